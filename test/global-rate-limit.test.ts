// Three limiters, as three proxies would hold them, sharing one global limit in a real Redis:
// together they admit the configured rate; with Redis killed they keep deciding locally at
// their share (counted as fallback, no error); with Redis back, shared counting resumes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { rateLimit, type RateLimitConfig } from '../proxy/src/config/schema.js';
import { GlobalRateLimiter, globalRateLimiters, type GlobalAwareFactory } from '../proxy/src/ratelimit/global-rate-limiter.js';
import { RedisLeaseBackend, type LeaseAnswer, type LeaseRequest } from '../proxy/src/ratelimit/redis-lease-backend.js';
import { ProxyMetrics } from '../proxy/src/telemetry/metrics.js';
import { localRateLimiters } from '../proxy/src/policy/token-bucket.js';
import type { RateLimiterFactory } from '../proxy/src/policy/rate-limiter.js';
import { startRedis, waitFor, type RealServer } from './support/servers.js';

const RATE = 200;
// Half a second of burst: a loaded machine may stall the event loop for a while without tokens being lost.
const config = rateLimit.parse({ requestsPerSecond: RATE, burst: 100, global: true, globalKey: 'shared-test' });

interface Proxy {
  metrics: ProxyMetrics;
  factory: GlobalAwareFactory;
  limiter: GlobalRateLimiter;
}

let redis: RealServer;
const proxies: Proxy[] = [];

before(async () => {
  redis = await startRedis();
  for (let i = 1; i <= 3; i++) {
    const metrics = new ProxyMetrics();
    const factory = await globalRateLimiters({ local: localRateLimiters, redisUrl: redis.url, proxyId: `proxy-${i}`, metrics });
    proxies.push({ metrics, factory, limiter: factory('query', config) as GlobalRateLimiter });
  }
  await waitFor('backends up', async () => proxies.every((p) => p.factory.backend!.up));
});

after(async () => {
  for (const p of proxies) {
    p.limiter.close();
    await p.factory.close();
  }
  await redis?.stop();
});

/**
 * Offers far more than the limit from all three for `ms`, and returns the admissions per
 * second after `settleMs` (the bucket's initial burst and the share learning are left out).
 * The rate is over the time that really passed between the rounds of offers counted: the
 * first counted round spends what accrued since the round before it, and the loop may end
 * well after its last round when the machine stalls it.
 */
async function drive(ms: number, settleMs: number, limiters = proxies.map((p) => p.limiter)): Promise<{ perSecond: number; offered: number; errors: number }> {
  const start = performance.now();
  let counted = 0;
  let offered = 0;
  let errors = 0;
  let previous = start;
  let from: number | undefined;
  let to = start;
  for (let now = start; now - start < ms; now = performance.now()) {
    const counting = now - start >= settleMs;
    if (counting) {
      from ??= previous;
      to = now;
    }
    for (const limiter of limiters) {
      for (let i = 0; i < 3; i++) {
        offered++;
        try {
          const r = limiter.take('');
          if (r.allowed && counting) counted++;
        } catch {
          errors++;
        }
      }
    }
    previous = now;
    await sleep(1);
  }
  assert.ok(from !== undefined && to > from, 'no round of offers after the settling time');
  return { perSecond: (counted * 1000) / (to - from), offered, errors };
}

const fallbackCount = async (p: Proxy) => {
  const m = (await p.metrics.rateLimitFallback.get()).values.find((v) => v.labels.route === 'query');
  return m?.value ?? 0;
};

test('three proxies sharing a global limit admit the limit within 10 %, Redis seeing a small fraction', async (t) => {
  const leasesBefore = proxies.reduce((n, p) => n + p.factory.backend!.calls, 0);
  const r = await drive(3500, 1000);
  const leases = proxies.reduce((n, p) => n + p.factory.backend!.calls, 0) - leasesBefore;
  t.diagnostic(`shared: ${r.perSecond.toFixed(1)}/s admitted for ${RATE}/s; ${leases} Redis calls for ${r.offered} decisions`);
  assert.equal(r.errors, 0);
  assert.ok(Math.abs(r.perSecond - RATE) <= RATE * 0.1, `admitted ${r.perSecond.toFixed(1)}/s for a limit of ${RATE}/s`);
  assert.ok(leases < r.offered * 0.1, `${leases} Redis calls for ${r.offered} decisions`);
  for (const p of proxies) {
    assert.equal(await fallbackCount(p), 0);
    assert.match(await p.metrics.registry.metrics(), /tsmesh_rate_limit_backend_up 1/);
  }
});

test('Redis killed: no errors, each proxy falls back to its share, counted; Redis back: shared counting resumes', async (t) => {
  await redis.kill();
  await waitFor('backends down', async () => proxies.every((p) => !p.factory.backend!.up));
  const down = await drive(2500, 1000);
  t.diagnostic(`Redis down: ${down.perSecond.toFixed(1)}/s admitted on local shares`);
  assert.equal(down.errors, 0);
  // Each proxy learned while Redis was up that three share the limit: a third each.
  assert.ok(Math.abs(down.perSecond - RATE) <= RATE * 0.15, `admitted ${down.perSecond.toFixed(1)}/s on local shares of ${RATE}/s`);
  for (const p of proxies) {
    assert.ok((await fallbackCount(p)) > 0);
    assert.match(await p.metrics.registry.metrics(), /tsmesh_rate_limit_backend_up 0/);
  }

  await redis.start();
  await waitFor('backends up again', async () => proxies.every((p) => p.factory.backend!.up), 10_000);
  const fallbackBefore = await Promise.all(proxies.map(fallbackCount));
  const leasesBefore = proxies.reduce((n, p) => n + p.factory.backend!.calls, 0);
  const back = await drive(3000, 1000);
  t.diagnostic(`Redis back: ${back.perSecond.toFixed(1)}/s admitted`);
  assert.equal(back.errors, 0);
  assert.ok(Math.abs(back.perSecond - RATE) <= RATE * 0.1, `admitted ${back.perSecond.toFixed(1)}/s after Redis returned`);
  assert.deepEqual(await Promise.all(proxies.map(fallbackCount)), fallbackBefore, 'no fallback once Redis is back');
  assert.ok(proxies.reduce((n, p) => n + p.factory.backend!.calls, 0) > leasesBefore);
  for (const p of proxies) assert.match(await p.metrics.registry.metrics(), /tsmesh_rate_limit_backend_up 1/);
});

test('light traffic is never refused while a lease is on its way (first requests spend on credit)', async () => {
  const metrics = new ProxyMetrics();
  const factory = await globalRateLimiters({ local: localRateLimiters, redisUrl: redis.url, proxyId: 'light', metrics });
  try {
    await waitFor('backend up', async () => factory.backend!.up);
    const limiter = factory('light', rateLimit.parse({ requestsPerSecond: 50, global: true, key: { header: 'x-client' } }));
    const refused: number[] = [];
    for (let i = 0; i < 20; i++) {
      if (!limiter.take(`client-${i % 4}`).allowed) refused.push(i);
      await sleep(30);
    }
    assert.deepEqual(refused, []);
    limiter.close();
  } finally {
    await factory.close();
  }
});

/** Redis whose answers reach the proxy `delayMs` late: a distant Redis, or a proxy whose event loop is busy. */
class LateRedis extends RedisLeaseBackend {
  constructor(
    url: string,
    proxyId: string,
    private readonly delayMs: number,
  ) {
    super({ url, proxyId });
  }

  override async lease(req: LeaseRequest): Promise<LeaseAnswer> {
    const answer = await super.lease(req);
    await sleep(this.delayMs);
    return answer;
  }
}

test('leases answered 200 ms late still let three proxies admit the limit (batches grow with the round trip)', async (t) => {
  const late = [1, 2, 3].map((i) => new LateRedis(redis.url, `late-${i}`, 200));
  const cfg = rateLimit.parse({ requestsPerSecond: RATE, burst: 100, global: true, globalKey: 'late-test' });
  const limiters = late.map((backend) => new GlobalRateLimiter({ routeName: 'late', config: cfg, backend, local: localRateLimiters }));
  try {
    await waitFor('late backends up', async () => late.every((b) => b.up));
    const r = await drive(3500, 1500, limiters);
    t.diagnostic(`200 ms round trips: ${r.perSecond.toFixed(1)}/s admitted for ${RATE}/s; batches ${limiters.map((l) => l.batch).join(', ')}`);
    assert.equal(r.errors, 0);
    // With batches of a fixed 100 ms of the share, one lease in flight per proxy capped the three at about 100/s.
    assert.ok(Math.abs(r.perSecond - RATE) <= RATE * 0.1, `admitted ${r.perSecond.toFixed(1)}/s for a limit of ${RATE}/s`);
    assert.ok(limiters.every((l) => l.stats.fallback === 0));
  } finally {
    for (const l of limiters) l.close();
    await Promise.all(late.map((b) => b.close()));
  }
});

test('a proxy whose event loop stalls longer than the lease timeout does not take Redis for down', async () => {
  const backend = new RedisLeaseBackend({ url: redis.url, proxyId: 'stalled', commandTimeoutMs: 200 });
  try {
    await waitFor('backend up', async () => backend.up);
    // Redis answers at once, but the loop stalls right after asking. Asked from a setImmediate
    // callback, the loop's next turn runs its due timers before it reads the socket, as after a
    // stall in a request handler.
    const { lease } = await new Promise<{ lease: Promise<LeaseAnswer> }>((resolve) =>
      setImmediate(() => {
        const lease = backend.lease({ limit: 'stall-test', key: '', ratePerSecond: 10, capacity: 10, want: 2 });
        const until = performance.now() + 500;
        while (performance.now() < until) {
          // busy
        }
        resolve({ lease });
      }),
    );
    assert.equal((await lease).granted, 2);
    assert.equal(backend.failures, 0);
    assert.ok(backend.up);
  } finally {
    await backend.close();
  }
});

test('without a Redis URL, global limits use the local factory', async () => {
  const created: RateLimitConfig[] = [];
  const local: RateLimiterFactory = (route, cfg) => {
    created.push(cfg);
    return localRateLimiters(route, cfg);
  };
  const factory = await globalRateLimiters({ local, proxyId: 'solo' });
  factory('query', config).close();
  assert.equal(factory.backend, undefined);
  assert.equal(created.length, 1);
  assert.equal(created[0]!.requestsPerSecond, RATE);
});
