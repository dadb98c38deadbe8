// The gateway when what it depends on fails: Redis down means uncached, not failed; the
// database down means 503 JSON answers (never a crash or a hang) and recovery when it returns;
// several instances starting at once on one empty database.
import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { startGateway, type Gateway } from '../examples/gateway/index.js';
import { postQuery, request } from './support/gateway-client.js';
import { sleep } from './support/proxy.js';
import { startPostgres, startRedis, waitFor, type RealServer } from './support/servers.js';

describe('gateway when Redis stops', () => {
  let db: RealServer;
  let redis: RealServer;
  let gw: Gateway;
  before(async () => {
    [db, redis] = await Promise.all([startPostgres(), startRedis()]);
    gw = await startGateway({ databaseUrl: db.url, redisUrl: redis.url, seedDocuments: 500 });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([db?.stop(), redis?.stop()]);
  });

  it('serves uncached while Redis is down and caches again when it is back', async () => {
    await postQuery(gw.url, { query: 'mesh' });
    assert.equal((await postQuery(gw.url, { query: 'mesh' })).json.cached, true);

    await redis.stop();
    for (const q of ['mesh', 'proxy']) {
      const r = await postQuery(gw.url, { query: q });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.cached, false);
      assert.equal(r.headers['x-cache'], 'BYPASS');
      assert.ok(r.json.count > 0);
    }
    const health = await request(`${gw.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ok');
    assert.equal(health.json.cache.state, 'down');

    await redis.start();
    await waitFor('redis reconnect', async () => (await request(`${gw.url}/health`)).json.cache.state === 'up');
    assert.equal((await postQuery(gw.url, { query: 'proxy' })).headers['x-cache'], 'MISS'); // a fresh, empty Redis
    assert.equal((await postQuery(gw.url, { query: 'proxy' })).headers['x-cache'], 'HIT');
  });

  it('serves uncached when Redis is killed outright', async () => {
    await redis.kill();
    const r = await postQuery(gw.url, { query: 'cluster' });
    assert.equal(r.status, 200);
    assert.equal(r.json.cached, false);
    await redis.start();
  });
});

describe('gateway when the database stops', () => {
  let db: RealServer;
  let redis: RealServer;
  let gw: Gateway;
  before(async () => {
    [db, redis] = await Promise.all([startPostgres(), startRedis()]);
    gw = await startGateway({ databaseUrl: db.url, redisUrl: redis.url, seedDocuments: 500, connectTimeoutMs: 1000, queryTimeoutMs: 1000 });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([db?.stop(), redis?.stop()]);
  });

  it('answers 503 JSON on /health and /query while it is down, and recovers when it returns', async () => {
    assert.equal((await postQuery(gw.url, { query: 'test' })).status, 200);
    await db.stop();

    const health = await request(`${gw.url}/health`);
    assert.equal(health.status, 503);
    assert.equal(health.json.status, 'unavailable');
    assert.equal(health.json.database.state, 'down');
    assert.match(health.json.reason, /database unreachable/);
    assert.equal(health.headers['retry-after'], '1');

    const q = await postQuery(gw.url, { query: 'timeout retry' }); // not cached
    assert.equal(q.status, 503);
    assert.equal(q.json.error, 'database unavailable');
    assert.equal(typeof q.json.detail, 'string');

    // A cached answer still comes from Redis.
    assert.equal((await postQuery(gw.url, { query: 'test' })).status, 200);

    await db.start();
    await waitFor('database recovery', async () => (await request(`${gw.url}/health`)).status === 200);
    const again = await postQuery(gw.url, { query: 'timeout retry' });
    assert.equal(again.status, 200);
    assert.ok(again.json.count > 0);
  });

  it('answers 503 (no hang) when the database is killed', async () => {
    await db.kill();
    const results = await Promise.all([request(`${gw.url}/health`), postQuery(gw.url, { query: 'schema migration' })]);
    assert.deepEqual(results.map((r) => r.status), [503, 503]);
    await db.start();
    await waitFor('database recovery', async () => (await request(`${gw.url}/health`)).status === 200);
  });

  it('serves a due entry from the in-process cache while the database is down; the failed refresh warns once', async () => {
    const ttlMs = 6000;
    const logs: string[] = [];
    const mem = await startGateway({ databaseUrl: db.url, seedDocuments: 500, cacheTtlMs: ttlMs, connectTimeoutMs: 500, queryTimeoutMs: 500, log: (level, msg) => logs.push(`${level} ${msg}`) });
    try {
      assert.equal(mem.cacheKind, 'memory');
      const t0 = Date.now();
      assert.equal((await postQuery(mem.url, { query: 'refresh outage' })).headers['x-cache'], 'MISS');
      await db.stop();
      // Due (at most 80 % of the TTL after the write), not expired.
      await sleep(Math.max(0, t0 + ttlMs * 0.8 + 50 - Date.now()));
      for (let i = 0; i < 5; i++) {
        const r = await postQuery(mem.url, { query: 'refresh outage' });
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-cache'], 'HIT');
      }
      const failed = () => logs.filter((l) => /^warn cache refresh failed/.test(l)).length;
      await waitFor('the failed refresh to be reported', async () => failed() > 0, 5000);
      assert.equal(failed(), 1, logs.join('\n'));
    } finally {
      await db.start();
      await waitFor('database recovery', async () => (await request(`${gw.url}/health`)).status === 200);
      await mem.stop();
    }
  });
});

describe('gateway instances starting at once on one empty database', () => {
  let db: RealServer;
  let gws: Gateway[] = [];
  before(async () => {
    db = await startPostgres();
  });
  after(async () => {
    await Promise.all(gws.map((g) => g.stop()));
    await db?.stop();
  });

  it('migrate and seed once, and both serve', async () => {
    gws = await Promise.all([1, 2, 3].map(() => startGateway({ databaseUrl: db.url, seedDocuments: 700 })));
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const docs = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM documents');
      assert.equal(docs.rows[0]!.n, 700);
      const versions = await client.query<{ version: number }>('SELECT version FROM gateway_migrations ORDER BY version');
      assert.deepEqual(versions.rows.map((r) => r.version), [1, 2]);
    } finally {
      await client.end();
    }
    for (const g of gws) assert.equal((await postQuery(g.url, { query: 'test' })).status, 200);
  });

  it('a restart on a migrated database changes nothing', async () => {
    const g = await startGateway({ databaseUrl: db.url, seedDocuments: 700 });
    gws.push(g);
    const r = await postQuery(g.url, { query: 'test' });
    assert.equal(r.status, 200);
  });
});
