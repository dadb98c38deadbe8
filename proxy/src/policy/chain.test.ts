// The whole resilience chain in its documented order (chain.ts), over a simulated bottom handler that
// does what the core's upstream handler is specified to do (test/support/simulated-cluster.ts).
// Fake time and seeded randomness (answers and backoff jitter), so every run repeats exactly;
// these are the scenarios at unit scale.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicies } from './chain.js';
import { compose } from './types.js';
import { localRateLimiterFactory } from './token-bucket.js';
import { seededRandom } from '../../../test/support/fault-upstream.js';
import { harness } from '../../../test/support/policy-fixtures.js';
import { openLoad as load, seededResilienceChain, simulatedUpstream } from '../../../test/support/simulated-cluster.js';

const retryRoute = {
  timeout: '2s',
  retry: { attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], perTryTimeout: '500ms', backoff: { base: '25ms', max: '250ms' } },
};

test('one of three endpoints dead under load: >= 99.9 % success, the dead one ejected, retries bounded', async () => {
  const h = harness({ route: retryRoute });
  const dead = h.cluster.endpoints[1]!;
  const up = simulatedUpstream(h, (ep) => (ep === dead ? { latency: 1, answer: 'connect-failure' } : { latency: 10, answer: 'ok' }));
  const chain = seededResilienceChain(h.build(), up.handler, seededRandom(4));
  const outcomes = await load(h, chain, 2, 2000);
  const ok = outcomes.filter((o) => o.status === 200).length / outcomes.length;
  assert.ok(ok >= 0.999, `success ${ok}`);
  assert.ok(dead.ejections >= 1, 'the dead endpoint was ejected');
  assert.ok(up.attempts() / outcomes.length <= 1.05, `attempts per request ${up.attempts() / outcomes.length}`);
});

test('20 % of answers are 503: >= 99 % success and <= 1.25 upstream attempts per request (issue 3, scenario 2)', async () => {
  // 99 % success needs 0.2 + 0.04 = 0.24 retries per request; the default budget (20 % of all
  // attempts) grants up to 0.25 per first try over a 10 s window. 60 000 requests per run, so
  // that the window holds enough requests for 0.24 to stay clear of 0.25 (docs/policies.md,
  // "Retry budget", has the figures at lower rates).
  for (const latency of [0, 10]) {
    const h = harness({ route: retryRoute, cluster: { outlierDetection: { enabled: false } } });
    const random = seededRandom(3);
    const up = simulatedUpstream(h, () => ({ latency, answer: random() < 0.2 ? 503 : 'ok' }));
    const chain = seededResilienceChain(h.build(), up.handler, seededRandom(4));
    const outcomes = await load(h, chain, 5, 12_000);
    const ok = outcomes.filter((o) => o.status === 200).length / outcomes.length;
    const ratio = up.attempts() / outcomes.length;
    console.log(`20 % 503, ${latency} ms: success ${ok.toFixed(4)}, attempts/request ${ratio.toFixed(4)} over ${outcomes.length} requests`);
    assert.ok(ok >= 0.99, `success ${ok}`);
    assert.ok(ratio <= 1.25, `attempts per request ${ratio}`);
    assert.equal(h.cluster.activeRetries, 0);
  }
});

test('all endpoints failing: at most 1.25 attempts per request plus the bounded floor, at low and high load (issue 3, scenario 3)', async () => {
  const { minConcurrent } = harness({ route: retryRoute }).route.retry!.budget;
  for (const { perMs, latency } of [
    { perMs: 0.02, latency: 0 }, // 20 req/s answered at once: retries rarely overlap, the floor's regime
    { perMs: 0.02, latency: 5 },
    { perMs: 0.5, latency: 0 },
    { perMs: 5, latency: 5 },
  ]) {
    const h = harness({ route: retryRoute });
    const up = simulatedUpstream(h, () => ({ latency, answer: 503 }));
    const chain = seededResilienceChain(h.build(), up.handler, seededRandom(4));
    const loadMs = 12_000;
    const outcomes = await load(h, chain, perMs, loadMs);
    assert.ok(outcomes.every((o) => o.status === 503));
    const ratio = up.attempts() / outcomes.length;
    // Retries are at most 25 % of the first tries, plus the floor's minConcurrent x 10 per 10 s
    // window the run touches (the load, then the 2 s deadline of its last requests), plus the
    // one retry per window granted just under the line (R < 0.25 N + 30 admits R = 30.75).
    const windows = Math.ceil((loadMs + 2000) / 10_000);
    const bound = 0.25 * outcomes.length + (minConcurrent * 10 + 1) * windows;
    const retries = up.attempts() - outcomes.length;
    console.log(`all failing, ${perMs * 1000} req/s, ${latency} ms: attempts/request ${ratio.toFixed(4)}, ${retries} retries (bound ${bound}) for ${outcomes.length} requests`);
    assert.ok(retries <= bound, `${retries} retries for ${outcomes.length} requests`);
    if (perMs >= 1) assert.ok(ratio <= 1.25, `under load the floor stays closed (retries are in flight): ${ratio}`);
    assert.ok(h.cluster.endpoints.filter((e) => e.ejections > 0).length >= 1, 'outliers were ejected');
    assert.ok(h.cluster.endpoints.filter((e) => !e.available(h.clock.now())).length <= 1, 'never more than maxEjectionPercent (50 % of 3) out');
    assert.equal(h.cluster.activeRequests, 0);
    assert.equal(h.cluster.activeRetries, 0);
  }
});

test('in chain order a rate-limited request takes no concurrency slot, and overload is answered before the breaker', async () => {
  const h = harness({
    route: { rateLimit: { requestsPerSecond: 1, burst: 3 } },
    cluster: { concurrency: { limit: 2, queue: { max: 0, timeout: '10ms' } }, circuitBreaker: { maxRequests: 1 } },
  });
  const up = simulatedUpstream(h, () => ({ latency: 100, answer: 'ok' }));
  const chain = compose(buildPolicies(h.build({ rateLimiters: localRateLimiterFactory(h.clock) })), up.handler);
  const results = [chain(h.ctx()), chain(h.ctx()), chain(h.ctx()), chain(h.ctx())];
  const reasons = (await Promise.all(results.slice(1))).map((o) => (o.kind === 'local' ? o.reason : o.status));
  // #1 is admitted everywhere. #2 gets a concurrency slot and meets the breaker (maxRequests 1).
  // #3 arrives while #2 still holds its slot: the limit of 2 is full and there is no queue.
  // #4 has no token left; it never reached the limiter, so it cost no slot.
  assert.deepEqual(reasons, ['circuit_open', 'overloaded', 'rate_limited']);
  const concurrency = h.cluster.stateOf<{ inFlight: number }>('concurrency', () => assert.fail());
  assert.equal(concurrency.inFlight, 1);
  await h.clock.tick(200);
  assert.equal((await results[0]!).status, 200);
  assert.equal(up.attempts(), 1);
});
