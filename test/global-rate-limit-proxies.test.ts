// Issue 4, scenario 6, with real proxies: three proxies booted from the control plane run a
// route with a global rate limit counted in a real Redis (the document's redis.url). Clients
// offer three times the limit through all three; the 200s they get, summed, are the limit within
// 10 %. Redis is killed mid-run: no 5xx, each proxy decides on its local share and counts it
// in its /metrics; Redis comes back: shared counting resumes. Then the document moves the
// limit to another Redis: the proxies follow without a failed request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ApiClient } from '../control-plane/src/api/client.js';
import { startControlPlane, type RunningControlPlane } from '../control-plane/src/control-plane.js';
import type { RunningProxy } from '../proxy/src/boot.js';
import { admin, Load, metricIn, startMeshProxy, tally, type Answer } from './support/mesh.js';
import { startPostgres, startRedis, waitFor, type RealServer } from './support/servers.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

const TOKEN = 'rl-token';
const LIMIT = 150;
/** Offered per proxy: together three times the limit. */
const OFFERED = LIMIT;

const doc = (redisUrl: string, upstream: string) => `selector: rl-*
redis: { url: "${redisUrl}" }
drain: { delay: 0, timeout: 2s }
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes:
      - name: api
        match: { path: { prefix: / } }
        cluster: app
        # The default burst, a second of the rate: a stalled event loop on a busy machine loses no tokens.
        rateLimit: { requestsPerSecond: ${LIMIT}, global: true, globalKey: e2e }
clusters:
  - { name: app, endpoints: [${upstream}] }
`;

describe('three real proxies sharing a global rate limit in Redis', () => {
  let postgres: RealServer;
  let redis: RealServer;
  let up: TestUpstream;
  let cp: RunningControlPlane;
  let api: ApiClient;
  const proxies: RunningProxy[] = [];
  let loads: Load[] = [];

  before(async () => {
    [postgres, redis, up] = await Promise.all([startPostgres(), startRedis(), startUpstream()]);
    cp = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: pino({ level: 'silent' }), replica: 'rl' });
    api = new ApiClient({ server: cp.httpAddress, token: TOKEN, author: 'rl' });
    await api.apply(doc(redis.url, up.address));
    proxies.push(...(await Promise.all(['rl-1', 'rl-2', 'rl-3'].map((n) => startMeshProxy(n, cp.grpcAddress, { token: TOKEN })))));
  });

  after(async () => {
    await Promise.all(loads.map((l) => l.stop()));
    await Promise.all(proxies.map((p) => p.close()));
    await cp?.stop();
    await Promise.all([postgres?.stop(), redis?.stop(), up?.close()]);
  });

  const metricsOf = async () => Promise.all(proxies.map(async (p) => (await admin(p, '/metrics')).text));
  const fallbacks = async () => (await metricsOf()).map((m) => metricIn(m, 'tsmesh_rate_limit_fallback_total', { route: 'api' }) ?? 0);
  const backendUp = async () => (await metricsOf()).map((m) => metricIn(m, 'tsmesh_rate_limit_backend_up'));
  /** Admitted per second, summed over the proxies, in [from, to). */
  const admitted = (answers: Answer[][], from: number, to: number) => answers.reduce((n, a) => n + tally(a, from, to).ok, 0) / ((to - from) / 1000);
  const noFailures = (answers: Answer[][], from = -Infinity, to = Infinity) => {
    for (const [i, a] of answers.entries()) {
      const t = tally(a, from, to);
      assert.deepEqual(t.failures, [], `rl-${i + 1}: failed requests`);
      assert.equal(t.server5xx, 0, `rl-${i + 1}: ${JSON.stringify(t.byStatus)}`);
    }
  };

  test('6. they admit the limit within 10 % together; Redis killed: no 5xx, fallback counted; Redis back: shared counting resumes', async (t) => {
    for (const p of proxies) assert.equal(p.runtime.current?.source, 'control-plane');
    await waitFor('Redis reachable from all three', async () => (await backendUp()).every((v) => v === 1));
    loads = proxies.map((p) => new Load(p.runtime.port('edge'), { rate: OFFERED, connections: 8 }));
    const answers = loads.map((l) => l.answers);

    // Shared: after a second (the bucket's initial burst spent, the proxies know they are three).
    const start = performance.now();
    await sleep(3500);
    const shared = admitted(answers, start + 1000, performance.now());
    t.diagnostic(`shared: ${shared.toFixed(1)}/s admitted in total for a limit of ${LIMIT}/s (offered ${3 * OFFERED}/s)`);
    assert.ok(Math.abs(shared - LIMIT) <= LIMIT * 0.1, `admitted ${shared.toFixed(1)}/s for a global limit of ${LIMIT}/s`);
    assert.deepEqual(await fallbacks(), [0, 0, 0]);

    await redis.kill();
    await waitFor('all three see Redis down', async () => (await backendUp()).every((v) => v === 0));
    const downFrom = performance.now();
    await sleep(2500);
    // The local buckets start full: their burst is left out too.
    const down = admitted(answers, downFrom + 1000, performance.now());
    t.diagnostic(`Redis down: ${down.toFixed(1)}/s admitted on local shares`);
    const fellBack = await fallbacks();
    assert.ok(fellBack.every((n) => n > 0), `fallback decisions counted by each proxy: ${fellBack.join(', ')}`);
    // Each proxy learned while Redis was up that three share the limit: a third each.
    assert.ok(Math.abs(down - LIMIT) <= LIMIT * 0.15, `admitted ${down.toFixed(1)}/s on local shares of ${LIMIT}/s`);

    await redis.start();
    await waitFor('all three see Redis back', async () => (await backendUp()).every((v) => v === 1), 10_000);
    const backFrom = performance.now();
    const fallbackBack = await fallbacks();
    // The restarted Redis has a full bucket again: its burst is left out like at the start.
    await sleep(3500);
    const back = admitted(answers, backFrom + 1000, performance.now());
    t.diagnostic(`Redis back: ${back.toFixed(1)}/s admitted`);
    assert.ok(Math.abs(back - LIMIT) <= LIMIT * 0.1, `admitted ${back.toFixed(1)}/s after Redis returned`);
    assert.deepEqual(await fallbacks(), fallbackBack, 'no local decisions once Redis is back');
    noFailures(answers);
    const all = answers.flat();
    t.diagnostic(`${all.length} requests: ${JSON.stringify(tally(all).byStatus)}`);
  });

  test('the document moves the limit to another Redis: the proxies follow, no request fails', async () => {
    const other = await startRedis();
    const client = new Redis(other.url, { maxRetriesPerRequest: 1 });
    try {
      const answers = loads.map((l) => l.answers);
      const from = performance.now();
      const r = await api.apply(doc(other.url, up.address), 'another Redis');
      await waitFor('all three on the new revision', async () => proxies.every((p) => p.runtime.current?.version === r.version));
      assert.ok(proxies.every((p) => p.rateLimiters.redisUrl === other.url));
      await waitFor('leases taken from the new Redis', async () => (await client.keys('tsmesh:rl:e2e:*')).length > 0);
      await waitFor('backends up on the new Redis', async () => (await backendUp()).every((v) => v === 1));
      assert.ok((await client.zcard('tsmesh:rl:e2e:members')) === 3, 'all three lease from it');
      await sleep(300);
      noFailures(answers, from);
      assert.ok(tally(answers[0]!, from).ok > 0);
    } finally {
      client.disconnect();
      await other.stop();
    }
  });
});
