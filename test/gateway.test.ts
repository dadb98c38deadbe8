// The example gateway API against real PostgreSQL and Redis: every answer of the API,
// including the error answers, and the Redis cache.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisCache } from '../examples/gateway/cache.js';
import { startGateway, type Gateway } from '../examples/gateway/index.js';
import { postQuery, rawExchange, request } from './support/gateway-client.js';
import { sleep } from './support/proxy.js';
import { startPostgres, startRedis, waitFor, type RealServer } from './support/servers.js';

describe('gateway API (PostgreSQL + Redis)', () => {
  let pg: RealServer;
  let redis: RealServer;
  let gw: Gateway;

  before(async () => {
    [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
    gw = await startGateway({ databaseUrl: pg.url, redisUrl: redis.url, seedDocuments: 2000 });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([pg?.stop(), redis?.stop()]);
  });

  it('GET /health reports the database and the cache', async () => {
    const r = await request(`${gw.url}/health`);
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'ok');
    assert.equal(r.json.database.state, 'up');
    assert.deepEqual(r.json.cache, { kind: 'redis', state: 'up' });
  });

  it('keeps idle connections open 65 s, above a proxy pool idle timeout', async () => {
    const answer = await rawExchange(gw.host, gw.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\r\nKeep-Alive: timeout=65\r\n/i);
  });

  it('HEAD /health answers without a body', async () => {
    const r = await request(`${gw.url}/health`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  });

  it("answers the original report's query with matching rows", async () => {
    const r = await postQuery(gw.url, { query: 'test' });
    assert.equal(r.status, 200);
    assert.equal(r.json.query, 'test');
    assert.ok(r.json.count > 0 && r.json.count <= 10, `count ${r.json.count}`);
    assert.equal(r.json.results.length, r.json.count);
    for (const row of r.json.results) {
      assert.equal(typeof row.id, 'number');
      assert.match(`${row.title} ${row.snippet}`.toLowerCase(), /test/);
      assert.equal(typeof row.rank, 'number');
    }
    const ranks = r.json.results.map((x: { rank: number }) => x.rank);
    assert.deepEqual(ranks, [...ranks].sort((a, b) => b - a), 'best match first');
  });

  it('caches in Redis: the second identical query is a hit with the same rows', async () => {
    const first = await postQuery(gw.url, { query: 'Circuit  Breaker' });
    assert.equal(first.status, 200);
    assert.equal(first.json.cached, false);
    assert.equal(first.headers['x-cache'], 'MISS');
    // Same query modulo case and spacing: same cache entry.
    const second = await postQuery(gw.url, { query: 'circuit breaker' });
    assert.equal(second.status, 200);
    assert.equal(second.json.cached, true);
    assert.equal(second.headers['x-cache'], 'HIT');
    assert.deepEqual(second.json.results, first.json.results);
  });

  it('refreshes a hot entry ahead of its TTL, once for all instances: it never expires while it is asked for', async () => {
    const ttlMs = 3000;
    const [a, b] = await Promise.all([0, 1].map((i) => startGateway({ databaseUrl: pg.url, redisUrl: redis.url, cacheTtlMs: ttlMs, name: `refresh-${i}` })));
    const client = new Redis(redis.url);
    // monitor() opens a connection of its own for MONITOR.
    const monitor = await client.monitor();
    const key = 'tsmesh:gateway:q2:latency budget';
    let entryWrites = 0;
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'set' && args[1] === key) entryWrites++;
    });
    try {
      const stored = async () => {
        const raw = await client.get(key);
        assert.ok(raw, 'entry stored');
        return { refreshAt: Number(raw.split('|')[0]), raw };
      };
      const before = Date.now();
      assert.equal((await postQuery(a.url, { query: 'Latency Budget' })).headers['x-cache'], 'MISS');
      const first = await stored();
      const after = Date.now();
      assert.ok(first.refreshAt >= before + ttlMs * 0.6 && first.refreshAt <= after + ttlMs * 0.8, `refresh at ${first.refreshAt - before} ms`);
      await waitFor('the write of the miss, seen by MONITOR', async () => entryWrites === 1, 5000);
      // Due now: both instances still answer from the cache, and one of them refreshes it.
      await sleep(Math.max(0, first.refreshAt - Date.now()) + 20);
      const hits = await Promise.all([postQuery(a.url, { query: 'latency budget' }), postQuery(b.url, { query: 'latency budget' })]);
      assert.deepEqual(hits.map((h) => h.headers['x-cache']), ['HIT', 'HIT']);
      await waitFor('the refreshed entry', async () => (await stored()).refreshAt > first.refreshAt, 5000);
      assert.ok((await client.pttl(key)) > ttlMs / 2, 'the refresh wrote a new TTL');
      await sleep(200); // a second refresh, had the other instance run one too, would land meanwhile
      assert.equal(entryWrites, 2, 'the miss and one refresh: the other instance did not refresh');
      // Past the first entry's TTL: still a hit, the refreshed entry.
      await sleep(Math.max(0, after + ttlMs - Date.now()) + 50);
      const later = await postQuery(b.url, { query: 'latency budget' });
      assert.equal(later.headers['x-cache'], 'HIT');
      assert.deepEqual(later.json.results, hits[0]!.json.results);
    } finally {
      monitor.disconnect();
      client.disconnect();
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('one instance at a time wins the right to refresh a key, for a tenth of the TTL', async () => {
    const caches = [0, 1].map(() => new RedisCache({ url: redis.url, ttlMs: 4000 }));
    const client = new Redis(redis.url);
    try {
      await Promise.all(caches.map((c) => c.ready(2000)));
      const won = await Promise.all(caches.map((c) => c.claimRefresh('claimed')));
      assert.equal(won.filter(Boolean).length, 1, `claims: ${won.join(', ')}`);
      const pttl = await client.pttl('tsmesh:gateway:q2:\u0000refresh:claimed');
      assert.ok(pttl > 0 && pttl <= 400, `claim held ${pttl} ms`);
      assert.equal(await caches[0]!.claimRefresh('other key'), true);
      await waitFor('the claim to lapse', () => caches[won.indexOf(false)]!.claimRefresh('claimed'), 5000);
    } finally {
      client.disconnect();
      await Promise.all(caches.map((c) => c.close()));
    }
  });

  it('a query with no match is 200 with no rows', async () => {
    const r = await postQuery(gw.url, { query: 'zzyzx' });
    assert.equal(r.status, 200);
    assert.equal(r.json.count, 0);
    assert.deepEqual(r.json.results, []);
  });

  it('accepts a charset parameter on the content type', async () => {
    const r = await request(`${gw.url}/query`, { method: 'POST', headers: { 'Content-Type': 'Application/JSON; charset=utf-8' }, body: '{"query":"proxy"}' });
    assert.equal(r.status, 200);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['invalid JSON', '{"query":', /invalid JSON/],
    ['a JSON array', '["test"]', /JSON object/],
    ['a JSON string', '"test"', /JSON object/],
    ['missing query', '{"q":"test"}', /missing field "query"/],
    ['numeric query', '{"query":5}', /must be a string, got number/],
    ['null query', '{"query":null}', /got null/],
    ['empty query', '{"query":"  "}', /must not be empty/],
    ['query with NUL', '{"query":"te\\u0000st"}', /NUL/],
    ['overlong query', JSON.stringify({ query: 'a'.repeat(1001) }), /longer than 1000/],
    ['empty body', '', /invalid JSON/],
  ];
  for (const [what, body, message] of bad) {
    it(`400 JSON error for ${what}`, async () => {
      const r = await postQuery(gw.url, body);
      assert.equal(r.status, 400);
      assert.equal(r.json.status, 400);
      assert.match(r.json.error, message);
    });
  }

  it('405 with Allow for a wrong method', async () => {
    const q = await request(`${gw.url}/query`);
    assert.equal(q.status, 405);
    assert.equal(q.headers.allow, 'POST');
    assert.match(q.json.error, /GET not allowed/);
    const h = await request(`${gw.url}/health`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(h.status, 405);
    assert.equal(h.headers.allow, 'GET, HEAD');
  });

  it('415 for a missing or wrong content type', async () => {
    const cases: Record<string, string>[] = [{}, { 'Content-Type': 'text/plain' }, { 'Content-Type': 'application/jsonx' }];
    for (const headers of cases) {
      const r = await request(`${gw.url}/query`, { method: 'POST', headers, body: '{"query":"test"}' });
      assert.equal(r.status, 415, JSON.stringify(headers));
      assert.match(r.json.error, /application\/json/);
    }
  });

  it('404 JSON for an unknown path; the query string is not part of the path', async () => {
    const r = await request(`${gw.url}/search`);
    assert.equal(r.status, 404);
    assert.match(r.json.error, /no such endpoint/);
    assert.equal((await request(`${gw.url}/health?probe=1`)).status, 200);
  });

  it('413 for a declared Content-Length over 64 KiB, before any of the body is read', async () => {
    const head = `POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\n`;
    const answer = await rawExchange(gw.host, gw.port, head); // no body sent at all
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /connection: close/i);
    assert.match(answer, /larger than 65536 bytes/);
  });

  it('413 for a chunked body crossing 64 KiB, while the client is still sending', async () => {
    const head = 'POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    const chunk = Buffer.from(`4000\r\n${'a'.repeat(0x4000)}\r\n`);
    const answer = await rawExchange(gw.host, gw.port, head, { keepWriting: chunk });
    assert.match(answer, /^HTTP\/1\.1 413 /);
  });

  it('a body of exactly 64 KiB is read (and rejected only for what it says)', async () => {
    const body = JSON.stringify({ query: 'x', pad: 'p'.repeat(64 * 1024 - JSON.stringify({ query: 'x', pad: '' }).length) });
    assert.equal(Buffer.byteLength(body), 64 * 1024);
    const r = await postQuery(gw.url, body);
    assert.equal(r.status, 200);
  });

  it('431 JSON for oversized headers', async () => {
    const answer = await rawExchange(gw.host, gw.port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.match(answer, /"status":431/);
  });

  it('a client that goes away mid-body costs nothing and the server keeps serving', async () => {
    const head = 'POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":';
    const s = connect(gw.port, gw.host);
    await new Promise((ok) => s.once('connect', ok));
    s.write(head);
    await new Promise((r) => setTimeout(r, 50));
    s.destroy();
    assert.equal((await postQuery(gw.url, { query: 'test' })).status, 200);
  });

  it('400 JSON for a malformed request line, and the server keeps serving', async () => {
    const answer = await rawExchange(gw.host, gw.port, 'GARBAGE\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /"error":"bad request/);
    assert.equal((await request(`${gw.url}/health`)).status, 200);
  });
});

describe('gateway with the in-process cache (no REDIS_URL)', () => {
  let pg: RealServer;
  let gw: Gateway;
  before(async () => {
    pg = await startPostgres();
    gw = await startGateway({ databaseUrl: pg.url, seedDocuments: 500 });
  });
  after(async () => {
    await gw?.stop();
    await pg?.stop();
  });

  it('caches in memory', async () => {
    assert.equal(gw.cacheKind, 'memory');
    assert.equal((await postQuery(gw.url, { query: 'test' })).json.cached, false);
    const second = await postQuery(gw.url, { query: 'test' });
    assert.equal(second.json.cached, true);
    assert.equal(second.headers['x-cache'], 'HIT');
    const health = await request(`${gw.url}/health`);
    assert.deepEqual(health.json.cache, { kind: 'memory', state: 'up' });
  });

  it('stop() lets a request in flight finish, closes idle connections and refuses new ones', async () => {
    const idle = connect(gw.port, gw.host);
    await new Promise((ok) => idle.once('connect', ok));
    const idleClosed = new Promise((ok) => idle.once('close', ok));
    // A request whose body is still on its way when the drain starts.
    const busy = connect(gw.port, gw.host);
    await new Promise((ok) => busy.once('connect', ok));
    busy.write('POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"query":');
    let answer = '';
    busy.on('data', (d: Buffer) => (answer += d.toString()));
    const busyClosed = new Promise((ok) => busy.once('close', ok));
    await new Promise((r) => setTimeout(r, 50));

    const stopped = gw.stop();
    await idleClosed;
    await assert.rejects(request(`${gw.url}/health`), /ECONNREFUSED/);
    busy.end('"test"}');
    await busyClosed;
    await stopped;
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\r\nConnection: close\r\n/i);
  });
});
