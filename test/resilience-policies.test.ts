// Each resilience policy on its own, through a real proxy (startProxy with the default chain and
// rate limiters) in front of fault-injecting upstreams on real sockets. Counts are taken at the
// upstreams and from /metrics on the admin listener; nothing here asserts a latency.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyRuntime } from '../proxy/src/runtime.js';
import { FaultUpstream, type FaultSettings } from './support/fault-upstream.js';
import { httpGet, sleep, startTestProxy, testConfig, type SimpleResponse } from './support/proxy.js';
import { byReason, concurrent, metric, scrape, sequential } from './support/resilience.js';
import { waitFor } from './support/servers.js';

const cleanup: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

async function upstreams(...settings: Array<Partial<FaultSettings>>): Promise<FaultUpstream[]> {
  const ups = await Promise.all(settings.map((s, i) => FaultUpstream.start({ name: `u${i}`, seed: 11 + i, settings: s })));
  cleanup.push(() => Promise.all(ups.map((u) => u.close())));
  return ups;
}

async function proxy(doc: Record<string, unknown>): Promise<ProxyRuntime> {
  const p = await startTestProxy(doc);
  cleanup.push(() => p.close());
  return p;
}

/** One listener, one route `r` (extra route fields merged), one cluster `c` (extra fields merged). */
function single(endpoints: readonly FaultUpstream[], route: Record<string, unknown> = {}, cluster: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/' } }, cluster: 'c', ...route }] }],
    clusters: [{ name: 'c', endpoints: endpoints.map((u) => u.address), ...cluster }],
  };
}

const header = (r: SimpleResponse, name: string): string | undefined => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

test('per-try timeout: the hung attempt is abandoned and the retry succeeds on the other endpoint; x-tsmesh-attempts says 2', async () => {
  const [hung, ok] = await upstreams({ hangRate: 1 }, {});
  const p = await proxy(
    single(
      [hung!, ok!],
      { timeout: '2s', retry: { attempts: 1, on: ['timeout'], perTryTimeout: '100ms', backoff: { base: '1ms', max: '1ms' } } },
      { loadBalancer: 'round-robin', outlierDetection: { enabled: false } },
    ),
  );
  // Round-robin over [hung, ok]: every first try lands on the hung endpoint, every retry on the other.
  const answers = await sequential(p.port('edge'), 4, '/q');
  for (const r of answers) {
    assert.equal(r.status, 200);
    assert.equal(header(r, 'x-upstream'), 'u1');
    assert.equal(header(r, 'x-tsmesh-attempts'), '2');
  }
  assert.equal(hung!.stats.requests, 4);
  await waitFor('the proxy to abandon the hung attempts', async () => hung!.stats.clientAborts === 4, 10_000);
  // Each attempt carried its own per-try deadline upstream, not the route's 2 s.
  for (const h of [...hung!.stats.recentHeaders, ...ok!.stats.recentHeaders]) {
    const left = Number(h['x-tsmesh-timeout-ms']);
    assert.ok(left > 0 && left <= 100, `attempt deadline ${left}`);
  }
  const m = await scrape(p);
  assert.equal(m.value('tsmesh_retries_total', { route: 'r', cluster: 'c' }), 4);
  assert.equal(m.value('tsmesh_upstream_attempts_total', { endpoint: hung!.address, code: 'upstream_timeout' }), 4);
  assert.equal(m.value('tsmesh_upstream_attempts_total', { endpoint: ok!.address, code: '200' }), 4);
  assert.equal(m.value('tsmesh_requests_total', { route: 'r', code: '200' }), 4);
});

test('Retry-After on a 503 replaces the backoff when it fits the deadline, and is answered as is when it does not', async () => {
  const [shed, ok] = await upstreams({ errorRate: 1, errorStatus: 503, errorRetryAfter: '1' }, {});
  const retry = { attempts: 1, on: ['retriable-status'], retriableStatuses: [503], backoff: { base: '1ms', max: '1ms' } };
  const p = await proxy({
    listeners: [
      {
        name: 'edge',
        routes: [
          { name: 'fits', match: { path: { prefix: '/fits' } }, cluster: 'c', timeout: '3s', retry },
          { name: 'short', match: { path: { prefix: '/short' } }, cluster: 'c', timeout: '500ms', retry },
        ],
      },
    ],
    clusters: [{ name: 'c', endpoints: [shed!.address, ok!.address], loadBalancer: 'round-robin', outlierDetection: { enabled: false } }],
  });
  const port = p.port('edge');
  const started = performance.now();
  const r = await httpGet(port, '/fits');
  const waited = performance.now() - started;
  assert.equal(r.status, 200);
  assert.equal(header(r, 'x-tsmesh-attempts'), '2');
  // A lower bound only: the retry did not go before the second the upstream asked for.
  assert.ok(waited >= 950, `the retry went after ${waited.toFixed(0)} ms`);
  // 1 s does not fit in a 500 ms route: the upstream's 503 (with its Retry-After) is the answer.
  const s = await httpGet(port, '/short');
  assert.equal(s.status, 503);
  assert.equal(header(s, 'x-tsmesh-reason'), undefined, "the upstream's own 503");
  assert.equal(header(s, 'retry-after'), '1');
  assert.equal(header(s, 'x-tsmesh-attempts'), '1');
  const m = await scrape(p);
  assert.equal(m.value('tsmesh_retries_total', { route: 'fits' }), 1);
  assert.equal(m.value('tsmesh_retries_total', { route: 'short' }), 0);
  assert.equal(shed!.stats.requests, 2);
  assert.equal(ok!.stats.requests, 1);
});

test('retry budget: with every answer a 503, retries stop at 25 % of first tries and the refusals are counted', async () => {
  const [down] = await upstreams({ errorRate: 1 });
  const p = await proxy(single([down!], { retry: { attempts: 1, on: ['gateway-error'], backoff: { base: '1ms', max: '1ms' }, budget: { percent: 20, minConcurrent: 0 } } }));
  // One request at a time, within one 10 s window: request k may retry while retries < 0.25 k,
  // which grants requests 1, 5, 9, 13 and 17 (no floor: minConcurrent 0).
  const answers = await sequential(p.port('edge'), 20, '/q');
  assert.ok(answers.every((r) => r.status === 503));
  assert.deepEqual(
    answers.map((r) => header(r, 'x-tsmesh-attempts')).flatMap((a, i) => (a === '2' ? [i + 1] : [])),
    [1, 5, 9, 13, 17],
  );
  assert.equal(down!.stats.requests, 25, '1.25 attempts per request');
  const m = await scrape(p);
  assert.equal(m.value('tsmesh_retries_total', { route: 'r' }), 5);
  assert.equal(m.value('tsmesh_retry_budget_exhausted_total', { route: 'r', cluster: 'c' }), 15);
  assert.equal(m.value('tsmesh_circuit_breaker_open', { cluster: 'c', resource: 'retries' }), 1, 'a retry now would be refused');
});

test('circuit breaker: past maxRequests the request gets 503 circuit_open at once, without reaching the upstream', async () => {
  const [hung] = await upstreams({ hangRate: 1 });
  const p = await proxy(single([hung!], { timeout: '1s' }, { circuitBreaker: { maxRequests: 3 } }));
  const port = p.port('edge');
  const held = Array.from({ length: 3 }, () => httpGet(port, '/q'));
  await waitFor('three requests held at the upstream', async () => hung!.stats.requests === 3, 10_000);
  const rejected = await concurrent(port, 2, '/q');
  // Answered while the three admitted ones are still held upstream.
  assert.equal(hung!.stats.inFlight, 3);
  for (const r of rejected) {
    assert.equal(r.status, 503);
    assert.equal(header(r, 'x-tsmesh-reason'), 'circuit_open');
    assert.equal(header(r, 'x-tsmesh-attempts'), undefined, 'no attempt was made');
  }
  let m = await scrape(p);
  assert.equal(m.value('tsmesh_circuit_breaker_open', { cluster: 'c', resource: 'requests' }), 1);
  assert.equal(m.value('tsmesh_circuit_breaker_rejections_total', { cluster: 'c', resource: 'requests' }), 2);
  assert.equal(m.value('tsmesh_requests_total', { reason: 'circuit_open' }), 2);
  assert.deepEqual(byReason(await Promise.all(held)), { upstream_timeout: 3 });
  assert.equal(hung!.stats.requests, 3);
  m = await scrape(p);
  assert.equal(m.value('tsmesh_circuit_breaker_open', { cluster: 'c', resource: 'requests' }), 0);
  assert.equal(m.value('tsmesh_requests_total', { reason: 'upstream_timeout' }), 3);
});

test('outlier ejection: consecutive failures eject; after the ejection one probe decides, failing again doubles it, success readmits', async () => {
  const [bad, good] = await upstreams({ errorRate: 1 }, {});
  // A base ejection of 1 s: the scrape and six requests made while it is ejected must fit in it.
  const ejectionMs = 1000;
  const p = await proxy(single([bad!, good!], {}, { loadBalancer: 'round-robin', outlierDetection: { consecutiveFailures: 3, baseEjectionTime: `${ejectionMs}ms` } }));
  const port = p.port('edge');
  // Round-robin alternates: after six requests the bad endpoint failed three times in a row.
  await sequential(port, 6, '/q');
  let ejectedAt = performance.now();
  assert.equal(bad!.stats.requests, 3);
  let m = await scrape(p);
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'c', endpoint: bad!.address }), 1);
  assert.equal(m.value('tsmesh_endpoint_ejected', { cluster: 'c', endpoint: bad!.address }), 1);
  // While ejected, the bad endpoint gets nothing.
  assert.ok((await sequential(port, 6, '/q')).every((r) => r.status === 200));
  assert.equal(bad!.stats.requests, 3);

  const probeBurst = async () => {
    const before = bad!.stats.requests;
    const answers = await concurrent(port, 8, '/q');
    return { toBad: bad!.stats.requests - before, answers };
  };
  // Ejection over, still failing: a burst sends exactly one request there (the probe); it fails,
  // and the endpoint is ejected again for 2 x the base time.
  await sleep(Math.max(0, ejectionMs + 100 - (performance.now() - ejectedAt)));
  let burst = await probeBurst();
  ejectedAt = performance.now();
  assert.equal(burst.toBad, 1, 'a single probe');
  assert.deepEqual(byReason(burst.answers), { 'upstream:200': 7, 'upstream:503': 1 });
  m = await scrape(p);
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'c', endpoint: bad!.address }), 2);
  assert.equal((await probeBurst()).toBad, 0, 'ejected again');

  // Recovered but slow: the probe is the only request there until it answers; then it is back.
  bad!.set({ errorRate: 0, latency: 200 });
  await sleep(Math.max(0, 2 * ejectionMs + 100 - (performance.now() - ejectedAt)));
  burst = await probeBurst();
  assert.equal(burst.toBad, 1, 'a single probe while it is in flight');
  assert.ok(burst.answers.every((r) => r.status === 200));
  m = await scrape(p);
  assert.equal(m.value('tsmesh_endpoint_ejected', { cluster: 'c', endpoint: bad!.address }), 0);
  assert.equal((await probeBurst()).toBad, 4, 'readmitted: its round-robin share again');
  assert.equal(m.value('tsmesh_outlier_ejections_total', { cluster: 'c' }), 2);
});

test('active health checks take an endpoint out and bring it back; with most endpoints out the balancer uses all (panic); stopped on close', async () => {
  const ups = await upstreams({}, {}, {});
  const [a, b, c] = ups as [FaultUpstream, FaultUpstream, FaultUpstream];
  const p = await startTestProxy(
    single(ups, {}, { loadBalancer: 'round-robin', healthCheck: { path: '/health', interval: '30ms', timeout: '1s', unhealthyThreshold: 2, healthyThreshold: 2 } }),
  );
  let closed = false;
  cleanup.push(async () => {
    if (!closed) await p.close();
  });
  const port = p.port('edge');
  const healthy = async (u: FaultUpstream) => metric(p, 'tsmesh_endpoint_healthy', { cluster: 'c', endpoint: u.address });
  const share = async (n: number) => {
    const before = ups.map((u) => u.stats.requests);
    assert.ok((await sequential(port, n, '/q')).every((r) => r.status === 200));
    return ups.map((u, i) => u.stats.requests - before[i]!);
  };
  await waitFor('first health-check rounds', async () => (await healthy(a)) === 1 && (await healthy(c)) === 1, 10_000);

  a.set({ health: 'fail' });
  await waitFor('a marked unhealthy', async () => (await healthy(a)) === 0, 10_000);
  assert.deepEqual(await share(12), [0, 6, 6]);
  a.set({ health: 'ok' });
  await waitFor('a healthy again', async () => (await healthy(a)) === 1, 10_000);
  assert.deepEqual(await share(12), [4, 4, 4]);

  // Two of three out: fewer than half available, so all three take traffic rather than one.
  a.set({ health: 'fail' });
  b.set({ health: 'hang' });
  await waitFor('a and b unhealthy', async () => (await healthy(a)) === 0 && (await healthy(b)) === 0, 10_000);
  assert.deepEqual(await share(12), [4, 4, 4]);
  const m = await scrape(p);
  assert.ok(m.value('tsmesh_health_checks_total', { cluster: 'c', endpoint: a.address, result: 'failure' }) >= 4);
  assert.ok(m.value('tsmesh_health_checks_total', { cluster: 'c', endpoint: b.address, result: 'timeout' }) >= 2);
  assert.ok(m.value('tsmesh_health_checks_total', { cluster: 'c', endpoint: c.address, result: 'success' }) >= 4);

  // A config without the healthCheck block stops the checker and puts its endpoints back.
  const applied = await p.apply(testConfig(single(ups, {}, { loadBalancer: 'round-robin' })), { version: '2', source: 'file' });
  assert.ok(applied.ok);
  assert.equal(await healthy(a), 1);
  const checks = c.stats.healthChecks;
  await sleep(120);
  assert.ok(c.stats.healthChecks <= checks + 1, 'no more rounds');
  a.set({ health: 'ok' });
  b.set({ health: 'ok' });

  // Checks run again after a config that has them, and stop when the proxy closes.
  assert.ok((await p.apply(testConfig(single(ups, {}, { healthCheck: { interval: '30ms' } })), { version: '3', source: 'file' })).ok);
  await waitFor('checks again', async () => c.stats.healthChecks > checks + 2, 10_000);
  closed = true;
  await p.close();
  const atClose = c.stats.healthChecks;
  await sleep(120);
  // A probe already on the wire when the proxy closed may still be counted.
  assert.ok(c.stats.healthChecks <= atClose + 1, 'no health checks after close');
});

test('static concurrency limit: past the limit and a full queue, 503 overloaded with Retry-After while the admitted requests are still upstream', async () => {
  // The admitted requests are held for 1 s: the polls, the rejected requests and the scrape below
  // fit in it, and the queued request (admitted when one of them ends) well inside its 2 s.
  const [slow] = await upstreams({ latency: 1000 });
  const p = await proxy(single([slow!], {}, { concurrency: { limit: 2, queue: { max: 1, timeout: '2s' } } }));
  const port = p.port('edge');
  const held = [httpGet(port, '/q'), httpGet(port, '/q')];
  await waitFor('two admitted', async () => slow!.stats.requests === 2, 10_000);
  const queued = httpGet(port, '/q');
  await waitFor('one queued', async () => (await metric(p, 'tsmesh_concurrency_queue_depth', { cluster: 'c' })) === 1, 10_000);
  const rejected = await concurrent(port, 2, '/q');
  // The two admitted requests are still at the upstream: the rejections did not wait for them.
  assert.equal(slow!.stats.statuses.get(200) ?? 0, 0);
  for (const r of rejected) {
    assert.equal(r.status, 503);
    assert.equal(header(r, 'x-tsmesh-reason'), 'overloaded');
    assert.equal(header(r, 'retry-after'), '2');
  }
  const m = await scrape(p);
  assert.equal(m.value('tsmesh_concurrency_limit', { cluster: 'c' }), 2);
  assert.equal(m.value('tsmesh_concurrency_in_flight', { cluster: 'c' }), 2);
  assert.equal(m.value('tsmesh_requests_total', { reason: 'overloaded' }), 2);
  assert.deepEqual(byReason([...(await Promise.all(held)), await queued]), { 'upstream:200': 3 });
  assert.equal(slow!.stats.maxInFlight, 2);
  assert.equal(await metric(p, 'tsmesh_concurrency_queue_wait_seconds_count', { cluster: 'c' }), 1);
});

test('concurrency queue timeout and the adaptive limit: a queued request that waits past queue.timeout, and requests past the learned limit, get 503 overloaded', async () => {
  const [slow] = await upstreams({ latency: 400 });
  const p = await proxy({
    listeners: [
      {
        name: 'edge',
        routes: [
          { name: 'static', match: { path: { prefix: '/static' } }, cluster: 'static' },
          { name: 'adaptive', match: { path: { prefix: '/adaptive' } }, cluster: 'adaptive' },
        ],
      },
    ],
    clusters: [
      { name: 'static', endpoints: [slow!.address], concurrency: { limit: 1, queue: { max: 5, timeout: '100ms' } } },
      { name: 'adaptive', endpoints: [slow!.address], concurrency: { adaptive: { algorithm: 'gradient2', initial: 4, min: 2, max: 50 }, queue: { max: 0 } } },
    ],
  });
  const port = p.port('edge');
  const [first, second] = await concurrent(port, 2, '/static');
  assert.equal(first!.status, 200);
  assert.equal(second!.status, 503);
  assert.equal(header(second!, 'x-tsmesh-reason'), 'overloaded');
  assert.equal(await metric(p, 'tsmesh_concurrency_queue_wait_seconds_count', { cluster: 'static' }), 1);

  assert.equal(await metric(p, 'tsmesh_concurrency_limit', { cluster: 'adaptive' }), 4);
  const answers = await concurrent(port, 7, '/adaptive');
  assert.deepEqual(byReason(answers), { 'upstream:200': 4, overloaded: 3 });
  assert.ok(answers.filter((r) => r.status === 503).every((r) => header(r, 'retry-after') === '1'));
  const m = await scrape(p);
  assert.equal(m.value('tsmesh_requests_total', { cluster: 'adaptive', reason: 'overloaded' }), 3);
  assert.equal(m.value('tsmesh_requests_total', { cluster: 'static', reason: 'overloaded' }), 1);
  assert.equal(slow!.stats.requests, 5);
});

test('rate limit: 429 rate_limited with Retry-After and RateLimit fields, one bucket per key, with the default local limiter', async () => {
  const [ok] = await upstreams({});
  const p = await proxy(single([ok!], { name: 'rl', rateLimit: { requestsPerSecond: 1, burst: 2, key: { header: 'x-client-id' } } }));
  const port = p.port('edge');
  const as = (client: string) => ({ headers: { 'x-client-id': client } });
  const a = await sequential(port, 3, '/q', as('a'));
  assert.deepEqual(
    a.map((r) => r.status),
    [200, 200, 429],
  );
  const limited = a[2]!;
  assert.equal(header(limited, 'x-tsmesh-reason'), 'rate_limited');
  assert.equal(header(limited, 'retry-after'), '1');
  assert.equal(header(limited, 'ratelimit-policy'), '"rl";q=1;w=1;tsmesh-burst=2');
  assert.equal(header(limited, 'ratelimit'), '"rl";r=0;t=1');
  assert.equal((await httpGet(port, '/q', as('b'))).status, 200, 'another key has its own bucket');
  assert.equal(ok!.stats.requests, 3, 'the rejected request never reached the upstream');
  assert.equal(await metric(p, 'tsmesh_requests_total', { route: 'rl', code: '429', reason: 'rate_limited' }), 1);
});

test('deadlines: x-tsmesh-timeout-ms and grpc-timeout on the way in lower the route timeout; the time left goes upstream', async () => {
  const [echo, slow] = await upstreams({}, { latency: 400 });
  const p = await proxy({
    listeners: [
      {
        name: 'edge',
        routes: [
          { name: 'slow', match: { path: { prefix: '/slow' } }, cluster: 'slow', timeout: '5s' },
          { name: 'echo', match: { path: { prefix: '/' } }, cluster: 'echo', timeout: '1s' },
        ],
      },
    ],
    clusters: [
      { name: 'echo', endpoints: [echo!.address] },
      { name: 'slow', endpoints: [slow!.address] },
    ],
  });
  const port = p.port('edge');
  const sent = async (headers: Record<string, string>) => {
    assert.equal((await httpGet(port, '/q', { headers })).status, 200);
    return Number(echo!.stats.recentHeaders.at(-1)!['x-tsmesh-timeout-ms']);
  };
  // The deadline in effect, and the time left of it sent upstream: at most that, and more than
  // half of it (the time the proxy took is not measured here, only which deadline applied).
  const cases: Array<[Record<string, string>, number]> = [
    [{}, 1000],
    [{ 'x-tsmesh-timeout-ms': '300' }, 300],
    [{ 'x-tsmesh-timeout-ms': '60000' }, 1000],
    [{ 'grpc-timeout': '250m' }, 250],
    [{ 'grpc-timeout': '2S', 'x-tsmesh-timeout-ms': '400' }, 400],
  ];
  for (const [headers, high] of cases) {
    const left = await sent(headers);
    assert.ok(left > high / 2 && left <= high, `${JSON.stringify(headers)}: ${left} ms sent upstream`);
  }
  // A deadline from the caller is enforced: 504 long before the 5 s route timeout would be.
  const r = await httpGet(port, '/slow', { headers: { 'x-tsmesh-timeout-ms': '100' } });
  assert.equal(r.status, 504);
  assert.equal(header(r, 'x-tsmesh-reason'), 'upstream_timeout');
  const g = await httpGet(port, '/slow', { headers: { 'grpc-timeout': '100000u' } });
  assert.equal(header(g, 'x-tsmesh-reason'), 'upstream_timeout');
  assert.equal(await metric(p, 'tsmesh_requests_total', { route: 'slow', reason: 'upstream_timeout' }), 2);
});

test('peak-EWMA counts 429 and 503 answers as slow: load moves to the slower endpoint that answers', async () => {
  for (const status of [503, 429]) {
    // The shedding endpoint answers at once, the good one after 3 ms: by latency alone the
    // shedding one would win every pick.
    const [shed, ok] = await upstreams({ errorRate: 1, errorStatus: status }, { latency: 3 });
    const p = await proxy(single([shed!, ok!], {}, { loadBalancer: 'peak-ewma', outlierDetection: { enabled: false } }));
    const answers = await sequential(p.port('edge'), 60, '/q');
    assert.ok(shed!.stats.requests <= 3, `${status}: the shedding endpoint got ${shed!.stats.requests} of 60`);
    assert.equal(answers.filter((r) => r.status === 200).length, ok!.stats.requests);
    assert.equal(await metric(p, 'tsmesh_upstream_attempts_total', { endpoint: shed!.address, code: String(status) }), shed!.stats.requests);
  }
});
