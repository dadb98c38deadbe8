// Issue 3's five scenarios end to end: a real proxy (startProxy, the default policy chain) in
// front of fault-injecting upstreams on loopback, load from the load generator in a child
// process (so that it does not share this process's event loop with the proxy), success
// measured at the client and attempts measured at the upstreams. No latency is asserted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { runLoadInChild, type LoadResult, type PlainLoadOptions } from '../bench/loadgen/index.js';
import type { ProxyRuntime } from '../proxy/src/runtime.js';
import { FaultUpstream, type FaultSettings } from './support/fault-upstream.js';
import { httpGet, startTestProxy, testConfig, type SimpleResponse } from './support/proxy.js';
import { byReason, scrape, sequential, upstreamRequests } from './support/resilience.js';
import { waitFor } from './support/servers.js';
import { ISSUE3_RETRY } from './support/retry-example.js';

const cleanup: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

async function upstreams(n: number, settings: Partial<FaultSettings> = {}, seed = 1): Promise<FaultUpstream[]> {
  const ups = await Promise.all(Array.from({ length: n }, (_, i) => FaultUpstream.start({ name: `u${i}`, seed: seed + i, settings })));
  cleanup.push(() => Promise.all(ups.map((u) => u.close())));
  return ups;
}

async function proxy(doc: Record<string, unknown>): Promise<ProxyRuntime> {
  const p = await startTestProxy(doc);
  cleanup.push(() => p.close());
  return p;
}


/**
 * The issue's retry block without its wall-clock bounds (2 s route timeout, 500 ms per try), for
 * the load scenarios: a shared 2-core machine that stalls this process for half a second would
 * turn into timeouts and retries that are not the subject (kills, 503s). Those bounds have their
 * own tests (scenario 3b here, per-try timeouts in resilience-policies.test.ts).
 */
const LOAD_RETRY = { ...ISSUE3_RETRY, perTryTimeout: undefined };

function gateway(endpoints: readonly FaultUpstream[], route: Record<string, unknown> = {}, cluster: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ name: 'edge', routes: [{ name: 'query', match: { path: { prefix: '/' } }, cluster: 'gateway', timeout: '10s', retry: LOAD_RETRY, ...route }] }],
    clusters: [{ name: 'gateway', endpoints: endpoints.map((u) => u.address), ...cluster }],
  };
}

/** What the client saw, for assertion messages. */
const seen = (load: LoadResult) => JSON.stringify({ statuses: load.statuses, tsmesh: load.tsmesh, errors: load.errors, rps: load.rps });

function openLoad(p: ProxyRuntime, rate: number, requests: number, extra: Partial<PlainLoadOptions> = {}): Promise<LoadResult> {
  return runLoadInChild({
    model: 'open',
    url: `http://127.0.0.1:${p.port('edge')}/query`,
    rate,
    // maxRequests ends the run; the window is a little longer so that it never cuts the last ones.
    durationMs: Math.ceil((requests / rate) * 1000) + 500,
    maxRequests: requests,
    timeoutMs: 15_000,
    ...extra,
  } as PlainLoadOptions);
}

const header = (r: SimpleResponse, name: string): string | undefined => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

test('scenario 1: one of three endpoints killed in the middle of a load of GETs: >= 99.9 % success', async () => {
  const ups = await upstreams(3, { latency: { min: 1, max: 4 } });
  const dead = ups[1]!;
  const p = await proxy(gateway(ups));
  let atKill = -1;
  const killer = setTimeout(() => {
    atKill = dead.stats.requests;
    void dead.kill();
  }, 1200);
  const load = await openLoad(p, 1000, 3000);
  clearTimeout(killer);
  const attempts = upstreamRequests(ups);
  const m = await scrape(p);
  const retries = m.value('tsmesh_retries_total', { route: 'query' });
  console.log(
    `scenario 1: ${load.requests} requests, success ${load.successPct.toFixed(3)} %, ${attempts} attempts reached the upstreams ` +
      `(${(attempts / load.requests).toFixed(4)} per request), ${retries} retries, dead endpoint ejected ${m.value('tsmesh_outlier_ejections_total', { endpoint: dead.address })}x`,
  );
  assert.equal(load.requests, 3000);
  assert.ok(load.successPct >= 99.9, `success ${load.successPct} %: ${seen(load)}`);
  assert.ok(atKill > 0, 'killed in the middle of the load');
  assert.equal(dead.stats.requests, atKill, 'nothing reached the dead endpoint after it died');
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'gateway', endpoint: dead.address }), 1);
  assert.equal(m.value('tsmesh_endpoint_ejected', { cluster: 'gateway', endpoint: dead.address }), 1);
  // What was in flight on the dead endpoint, and the connection failures before its ejection,
  // went again: a handful of retries, not a multiple of the load.
  assert.ok(retries >= 1 && retries <= 50, `${retries} retries`);
  assert.ok(m.value('tsmesh_upstream_attempts_total', { endpoint: dead.address, code: 'upstream_connect_failure' }) >= 1);
});

test('scenario 2: 20 % of answers are 503: >= 99 % success with retries, <= 1.25 upstream attempts per request', async () => {
  // Why these numbers. At 20 % failures a request needs 1 / 0.8 = 1.25 attempts on average to
  // succeed, and the default budget (20 % of all attempts) allows exactly that, 0.25 retries
  // per first try: the pass lines (99 % and 1.25) sit right at what the rate allows, so the
  // test is only as stable as its sampling.
  // - The budget counts over a 10 s window, so any request count < 10 s of load is one window;
  //   5000 requests make the floor's fixed allowance (minConcurrent x 10 = 30 retries beyond
  //   the ratio) 0.6 % of the requests, and 1000 req/s keeps retries in flight (backoff 0-25 ms,
  //   250 retries/s), which closes that floor most of the time.
  // - attempts: 3 rather than the issue's example 2: with 2 retries 0.2^3 = 0.8 % of requests
  //   fail three times whatever the budget, so success would be 99.2 % +- 0.13 % (one standard
  //   deviation at 5000 requests) against a 99 % line: 1 run in 16 would fail. With 3 retries
  //   that share is 0.16 %.
  // - fateDeck: 10 deals exactly 2 errors in every 10 answers of each endpoint, at random places.
  //   Drawn independently, the error share of ~6000 answers has a standard deviation of 0.5 %,
  //   which moves the retries needed by +-0.006 per request against a budget margin of about
  //   0.002: the injector's own noise would decide the result. With exact shares, attempts =
  //   1.25 x requests - 1.25 x (requests that ended in a 503), up to the deck in progress, so the
  //   ratio stays at or below 1.25 by construction of the budget and the success measures how
  //   well the retries find the answers that exist.
  const ups = await upstreams(3, { errorRate: 0.2, errorStatus: 503, fateDeck: 10, latency: { min: 0, max: 2 } }, 20);
  const p = await proxy(gateway(ups, { retry: { ...LOAD_RETRY, attempts: 3 } }));
  const load = await openLoad(p, 1000, 5000);
  const attempts = upstreamRequests(ups);
  const m = await scrape(p);
  const ratio = attempts / load.requests;
  const errorShare = ups.reduce((n, u) => n + (u.stats.statuses.get(503) ?? 0), 0) / attempts;
  console.log(
    `scenario 2: ${load.requests} requests at ${load.rps} req/s, success ${load.successPct.toFixed(3)} %, ${attempts} upstream attempts = ` +
      `${ratio.toFixed(4)} per request, upstream 503 share ${(errorShare * 100).toFixed(2)} %, retries ${m.value('tsmesh_retries_total', { route: 'query' })}, ` +
      `budget refusals ${m.value('tsmesh_retry_budget_exhausted_total', { route: 'query' })}`,
  );
  assert.equal(load.requests, 5000);
  assert.ok(load.successPct >= 99, `success ${load.successPct} %: ${seen(load)}`);
  assert.ok(ratio <= 1.25, `attempts per request ${ratio}`);
  assert.equal(attempts, load.requests + m.value('tsmesh_retries_total', { route: 'query' }), 'every attempt is a first try or a counted retry');
  // Only the upstream's own 503s, never a rejection of the proxy.
  assert.deepEqual(Object.keys(load.tsmesh), []);
});

test('scenario 3a: every endpoint answers 503: the budget holds attempts to 1.25 per request, one endpoint ejected', async () => {
  const ups = await upstreams(3, { errorRate: 1, errorStatus: 503, latency: { min: 0, max: 2 } }, 30);
  const p = await proxy(gateway(ups));
  const load = await openLoad(p, 1000, 4000);
  const attempts = upstreamRequests(ups);
  const m = await scrape(p);
  const retries = m.value('tsmesh_retries_total', { route: 'query' });
  const refused = m.value('tsmesh_retry_budget_exhausted_total', { route: 'query' });
  const { minConcurrent } = ISSUE3_RETRY.budget;
  console.log(
    `scenario 3a: ${load.requests} requests, all 503; ${attempts} upstream attempts = ${(attempts / load.requests).toFixed(4)} per request ` +
      `(${retries} retries, ${refused} refused by the budget; floor allowance ${minConcurrent * 10})`,
  );
  assert.equal(load.requests, 4000);
  assert.equal(load.statuses['503'], 4000, `every answer is the upstream 503: ${seen(load)}`);
  assert.equal(attempts, load.requests + retries);
  // The whole run is one 10 s window: retries < 0.25 x first tries (at this traffic the floor
  // of minConcurrent x 10 adds nothing; docs/policies.md, "Retry budget"), plus the one granted
  // just under the line.
  assert.ok(retries <= 0.25 * load.requests + 1, `${retries} retries for ${load.requests} requests`);
  assert.ok(attempts / load.requests <= 1.25 + 1 / load.requests, `attempts per request ${attempts / load.requests}`);
  // A request ends refused by the budget or after both its retries: at most retries / 2 did the latter.
  assert.ok(refused >= load.requests - retries / 2, `${refused} refusals`);
  // Ejections stop at maxEjectionPercent (50 % of 3 endpoints: one).
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'gateway' }), 1);
  const ejected = ups.filter((u) => m.value('tsmesh_endpoint_ejected', { endpoint: u.address }) === 1);
  assert.equal(ejected.length, 1);
  const before = ejected[0]!.stats.requests;
  await sequential(p.port('edge'), 20, '/query');
  assert.equal(ejected[0]!.stats.requests, before, 'the ejected endpoint gets nothing');
});

test('scenario 3b: every endpoint hangs: past maxRequests the breaker answers 503 circuit_open at once, and nothing of it reaches the upstream', async () => {
  const ups = await upstreams(3, { hangRate: 1 }, 40);
  const p = await proxy(
    gateway(ups, { timeout: '300ms', retry: { ...ISSUE3_RETRY, perTryTimeout: '100ms' } }, { circuitBreaker: { maxRequests: 10 } }),
  );
  const load = await runLoadInChild({
    model: 'closed',
    url: `http://127.0.0.1:${p.port('edge')}/query`,
    users: 40,
    thinkTimeMs: 5,
    durationMs: 1500,
    timeoutMs: 5000,
  });
  const m = await scrape(p);
  const attempts = upstreamRequests(ups);
  const retries = m.value('tsmesh_retries_total', { route: 'query' });
  const open = load.tsmesh.circuit_open?.count ?? 0;
  const timedOut = load.tsmesh.upstream_timeout?.count ?? 0;
  console.log(
    `scenario 3b: ${load.requests} requests: ${open} circuit_open, ${timedOut} upstream_timeout; ${attempts} upstream attempts ` +
      `(${retries} retries) = ${(attempts / timedOut).toFixed(3)} per admitted request; ejections ${m.value('tsmesh_outlier_ejections_total', { cluster: 'gateway' })}`,
  );
  assert.equal(open + timedOut, load.requests, JSON.stringify(load.statuses));
  assert.equal(load.errors.total, 0, 'no refused, reset or timed-out client request');
  assert.ok(open > 4 * timedOut, 'most requests were answered by the breaker');
  assert.equal(m.value('tsmesh_circuit_breaker_rejections_total', { cluster: 'gateway', resource: 'requests' }), open);
  assert.equal(m.value('tsmesh_requests_total', { reason: 'circuit_open' }), open);
  // Only admitted requests reached the upstream: each at least once, and no more often than its
  // first try and the retries granted (a retry granted as the deadline ran out is never sent).
  assert.ok(attempts >= timedOut && attempts <= timedOut + retries, `${attempts} attempts`);
  // Few requests get past the breaker, so the budget's floor (minConcurrent x 10 retries per
  // 10 s window, when 25 % of first tries is less) may be what it grants here; counted against
  // all client requests, as the issue counts them, attempts stay far below 1.25 per request.
  assert.ok(retries <= Math.max(0.25 * timedOut, ISSUE3_RETRY.budget.minConcurrent * 10) + 1, `${retries} retries for ${timedOut} admitted requests`);
  assert.ok(attempts / load.requests <= 1.25, `attempts per client request ${attempts / load.requests}`);
  for (const u of ups) assert.ok(u.stats.maxInFlight <= 10, `${u.name}: ${u.stats.maxInFlight} in flight`);
  // Per-try timeouts count against endpoints: one of three ejected (maxEjectionPercent 50).
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'gateway' }), 1);
});

test('scenario 4: a POST without Idempotency-Key whose bytes reached the upstream is never sent twice; with a key and a small body it is retried', async () => {
  const [bad, good] = await upstreams(2, {}, 50);
  // This scenario is about what may be sent twice, not about how many retries the budget
  // grants: at 50 % (one retry per first try) every retry that is safe is granted, whatever the
  // order in which the concurrent first tries and retries reach the budget.
  const p = await proxy(
    gateway([bad!, good!], { retry: { ...LOAD_RETRY, budget: { percent: 50 } } }, { loadBalancer: 'round-robin', outlierDetection: { enabled: false } }),
  );
  const port = p.port('edge');
  const sentTimes = (id: string) => (bad!.stats.bodies.get(id) ?? 0) + (good!.stats.bodies.get(id) ?? 0);
  /** A POST with its own x-request-id (the upstream counts bodies by it, or by the key); status 0 when the proxy aborted the response. */
  const post = (id: string, headers: Record<string, string> = {}, body = `payload ${id}`) =>
    httpGet(port, '/query', { method: 'POST', body, headers: { 'content-type': 'text/plain', 'x-request-id': id, ...headers } }).catch(
      (): SimpleResponse => ({ status: 0, headers: {}, rawHeaders: [], body: '' }),
    );
  const ids = (prefix: string) => Array.from({ length: 10 }, (_, i) => `${prefix}-${i}`);

  // 503 and a reset before any answer are retriable conditions; a reset in the middle of the
  // body comes after the 200 head was relayed, so nobody can retry it.
  const faults = [
    { fault: { errorRate: 1, errorStatus: 503 }, failed: 503, retriable: true },
    { fault: { resetRate: 1, resetAt: 'before' as const }, failed: 502, retriable: true },
    { fault: { resetRate: 1, resetAt: 'mid' as const }, failed: 0, retriable: false },
  ];
  for (const { fault, failed, retriable } of faults) {
    bad!.set({ errorRate: 0, resetRate: 0, ...fault });
    const name = JSON.stringify(fault);
    // Round-robin over [bad, good]: about half of the first tries meet the failing endpoint.
    let atBad = bad!.stats.requests;
    const plain = await Promise.all(ids(`${name}-plain`).map((id) => post(id)));
    const plainAtBad = bad!.stats.requests - atBad;
    assert.ok(plainAtBad >= 2 && plainAtBad <= 8, `${name}: ${plainAtBad} of 10 met the failing endpoint`);
    for (const id of ids(`${name}-plain`)) assert.equal(sentTimes(id), 1, `${name}: ${id} sent once`);
    assert.equal(plain.filter((r) => r.status === 200).length, 10 - plainAtBad, name);
    assert.equal(plain.filter((r) => r.status === failed).length, plainAtBad, name);
    assert.ok(plain.filter((r) => r.status !== 0).every((r) => header(r, 'x-tsmesh-attempts') === '1'));

    atBad = bad!.stats.requests;
    const keyed = await Promise.all(ids(`${name}-keyed`).map((id) => post(id, { 'idempotency-key': id })));
    const keyedAtBad = bad!.stats.requests - atBad;
    const times = ids(`${name}-keyed`).map(sentTimes);
    if (retriable) {
      assert.ok(keyed.every((r) => r.status === 200), `${name}: ${keyed.map((r) => r.status)}`);
      assert.equal(times.filter((n) => n === 2).length, keyedAtBad, `${name}: each keyed request that met the failing endpoint went again, once`);
      assert.equal(times.filter((n) => n === 1).length, 10 - keyedAtBad);
      assert.equal(keyed.filter((r) => header(r, 'x-tsmesh-attempts') === '2').length, keyedAtBad);
    } else {
      assert.deepEqual(times, Array(10).fill(1), `${name}: the head was already relayed`);
      assert.equal(keyed.filter((r) => r.status === 0).length, keyedAtBad);
    }
  }

  // A key does not help a body larger than the replay buffer (64 KiB): it is no longer held.
  bad!.set({ errorRate: 1, errorStatus: 503, resetRate: 0 });
  const big = 'x'.repeat(100 * 1024);
  const atBad = bad!.stats.requests;
  const large = await Promise.all(ids('large').map((id) => post(id, { 'idempotency-key': id }, big)));
  assert.equal(large.filter((r) => r.status === 503).length, bad!.stats.requests - atBad);
  assert.ok(bad!.stats.requests > atBad);
  for (const id of ids('large')) assert.equal(sentTimes(id), 1);

  // Nothing reached the upstream (connection refused): a POST without a key may go elsewhere.
  await bad!.kill();
  const refused = await Promise.all(ids('unsent').map((id) => post(id)));
  assert.ok(refused.every((r) => r.status === 200));
  for (const id of ids('unsent')) assert.equal(good!.stats.bodies.get(id), 1);
  const m = await scrape(p);
  const connectFailures = m.value('tsmesh_upstream_attempts_total', { endpoint: bad!.address, code: 'upstream_connect_failure' });
  assert.ok(connectFailures >= 1);
  assert.equal(refused.filter((r) => header(r, 'x-tsmesh-attempts') === '2').length, connectFailures);
});

test('scenario 5: a config swap (an equivalent config, a new version) keeps breaker, ejection, limiter, rate-limit and health state', async () => {
  const [bad, good, hung, shed, sick] = await Promise.all([
    FaultUpstream.start({ name: 'bad', settings: { errorRate: 1 } }),
    FaultUpstream.start({ name: 'good' }),
    FaultUpstream.start({ name: 'hung', settings: { hangRate: 1 } }),
    FaultUpstream.start({ name: 'shed', settings: { errorRate: 1 } }),
    FaultUpstream.start({ name: 'sick', settings: { health: 'fail' } }),
  ]);
  const all = [bad!, good!, hung!, shed!, sick!];
  cleanup.push(() => Promise.all(all.map((u) => u.close())));
  const route = (name: string, cluster: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { prefix: `/${name}` } }, cluster, timeout: '3s', ...extra });
  const doc = {
    listeners: [
      {
        name: 'edge',
        routes: [
          route('eject', 'ejecting'),
          route('limited', 'limited'),
          route('breaker', 'breaker'),
          route('adaptive', 'adaptive'),
          route('rl', 'plain', { rateLimit: { requestsPerSecond: 0.01, burst: 3 } }),
          route('health', 'checked'),
        ],
      },
    ],
    clusters: [
      { name: 'ejecting', endpoints: [bad!.address, good!.address], loadBalancer: 'round-robin', outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '30s' } },
      { name: 'limited', endpoints: [hung!.address], concurrency: { limit: 2, queue: { max: 0 } } },
      { name: 'breaker', endpoints: [hung!.address], circuitBreaker: { maxRequests: 2 } },
      { name: 'adaptive', endpoints: [shed!.address], concurrency: { adaptive: { initial: 20, min: 4, max: 100 } } },
      { name: 'plain', endpoints: [good!.address] },
      {
        name: 'checked',
        endpoints: [sick!.address, good!.address],
        loadBalancer: 'round-robin',
        healthCheck: { interval: '30ms', timeout: '2s', unhealthyThreshold: 2, healthyThreshold: 2 },
      },
    ],
  };
  const p = await proxy(doc);
  const port = p.port('edge');

  // Build up state of each kind.
  await sequential(port, 4, '/eject'); // bad fails twice: ejected
  assert.equal(bad!.stats.requests, 2);
  const held = [...Array.from({ length: 2 }, () => httpGet(port, '/limited')), ...Array.from({ length: 2 }, () => httpGet(port, '/breaker'))];
  await waitFor('four requests held', async () => hung!.stats.requests === 4, 10_000);
  await sequential(port, 10, '/adaptive'); // a window of drops: gradient2 cuts its limit
  assert.deepEqual(byReason(await sequential(port, 3, '/rl')), { 'upstream:200': 3 });
  await waitFor('sick marked unhealthy', async () => (await scrape(p)).value('tsmesh_endpoint_healthy', { endpoint: sick!.address, cluster: 'checked' }) === 0, 10_000);
  // From now on its health checks would take 2 s to fail: a lost verdict could not be re-learnt in time.
  sick!.set({ health: 'hang' });
  const before = await scrape(p);
  const learnedLimit = before.value('tsmesh_concurrency_limit', { cluster: 'adaptive' });
  assert.equal(learnedLimit, 18, 'gradient2 learned from the drops (20 x 0.9)');

  const applied = await p.apply(testConfig(doc), { version: '2', source: 'file' });
  assert.ok(applied.ok);
  const after = await scrape(p);
  assert.equal(after.value('tsmesh_config_info', { version: '2' }), 1);

  // Concurrency limiter: the two in-flight requests still hold their slots.
  const limited = await httpGet(port, '/limited');
  assert.equal(header(limited, 'x-tsmesh-reason'), 'overloaded');
  // Breaker: the two active requests still count against maxRequests.
  const broken = await httpGet(port, '/breaker');
  assert.equal(header(broken, 'x-tsmesh-reason'), 'circuit_open');
  assert.equal(hung!.stats.requests, 4);
  // Outlier ejection: the bad endpoint is still out.
  assert.ok((await sequential(port, 4, '/eject')).every((r) => r.status === 200));
  assert.equal(bad!.stats.requests, 2);
  assert.equal(after.value('tsmesh_endpoint_ejected', { endpoint: bad!.address }), 1);
  // Adaptive limit: what it learned stays.
  assert.equal(after.value('tsmesh_concurrency_limit', { cluster: 'adaptive' }), learnedLimit);
  // Rate limit: the bucket is still empty.
  const limitedRate = await httpGet(port, '/rl');
  assert.equal(header(limitedRate, 'x-tsmesh-reason'), 'rate_limited');
  // Health: the sick endpoint is still out of the balancer.
  const sickBefore = sick!.stats.requests;
  assert.ok((await sequential(port, 4, '/health')).every((r) => r.status === 200));
  assert.equal(sick!.stats.requests, sickBefore);
  assert.equal(after.value('tsmesh_endpoint_healthy', { endpoint: sick!.address }), 0);

  const m = await scrape(p);
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'ejecting' }), 1);
  assert.equal(m.value('tsmesh_circuit_breaker_rejections_total', { cluster: 'breaker', resource: 'requests' }), 1);
  assert.equal(m.value('tsmesh_requests_total', { route: 'limited', reason: 'overloaded' }), 1);
  assert.equal(m.value('tsmesh_requests_total', { route: 'rl', reason: 'rate_limited' }), 1);
  await p.close();
  await Promise.allSettled(held);
});
