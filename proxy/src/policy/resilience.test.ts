// The whole resilience chain in its documented order, over a simulated bottom handler that
// does what the core's upstream handler is specified to do (test/support/simulated-cluster.ts).
// Fake time; these are the scenarios at unit scale.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildResiliencePolicies } from './resilience.js';
import { compose } from './types.js';
import { localRateLimiterFactory } from './token-bucket.js';
import { seededRandom } from '../../../test/support/fault-upstream.js';
import { harness } from '../../../test/support/policy-fixtures.js';
import { openLoad as load, simulatedUpstream } from '../../../test/support/simulated-cluster.js';

const retryRoute = {
  timeout: '2s',
  retry: { attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], perTryTimeout: '500ms', backoff: { base: '25ms', max: '250ms' } },
};

test('one of three endpoints dead under load: >= 99.9 % success, the dead one ejected, retries bounded', async () => {
  const h = harness({ route: retryRoute });
  const dead = h.cluster.endpoints[1]!;
  const up = simulatedUpstream(h, (ep) => (ep === dead ? { latency: 1, answer: 'connect-failure' } : { latency: 10, answer: 'ok' }));
  const chain = compose(buildResiliencePolicies(h.build()), up.handler);
  const outcomes = await load(h, chain, 2, 2000);
  const ok = outcomes.filter((o) => o.status === 200).length / outcomes.length;
  assert.ok(ok >= 0.999, `success ${ok}`);
  assert.ok(dead.ejections >= 1, 'the dead endpoint was ejected');
  assert.ok(up.attempts() / outcomes.length <= 1.05, `attempts per request ${up.attempts() / outcomes.length}`);
});

test('20 % of answers are 503: the default budget bounds retries below what 99 % success would need; a larger budget buys it', async () => {
  // With 20 % failures, 99 % success needs ~24 retries per 100 requests, while Envoy's budget
  // counts a retry from its decision, through the backoff, to its answer against the cluster's
  // active requests: with a 25 ms backoff base and a 10 ms upstream, retries spend most of the
  // time requests are active, so 20 % of active requests grants about half of them
  // (docs/policies.md, "Retry budget").
  const run = async (budget: Record<string, unknown>) => {
    const h = harness({ route: { ...retryRoute, retry: { ...retryRoute.retry, budget } }, cluster: { outlierDetection: { enabled: false } } });
    const random = seededRandom(3);
    const up = simulatedUpstream(h, () => ({ latency: 10, answer: random() < 0.2 ? 503 : 'ok' }));
    const chain = compose(buildResiliencePolicies(h.build()), up.handler);
    const outcomes = await load(h, chain, 2, 3000);
    return { ok: outcomes.filter((o) => o.status === 200).length / outcomes.length, ratio: up.attempts() / outcomes.length };
  };
  const byDefault = await run({});
  const generous = await run({ percent: 100 });
  console.log(`20 % 503: default budget success ${byDefault.ok.toFixed(4)} attempts/request ${byDefault.ratio.toFixed(3)}; percent 100: ${generous.ok.toFixed(4)} ${generous.ratio.toFixed(3)}`);
  assert.ok(byDefault.ratio <= 1.25, `attempts per request ${byDefault.ratio}`);
  assert.ok(byDefault.ok > 0.85, `retries still help: ${byDefault.ok} (no retries: 0.80)`);
  assert.ok(generous.ok >= 0.99, `success ${generous.ok}`);
  assert.ok(generous.ratio <= 1.25, `attempts per request ${generous.ratio}`);
});

test('all endpoints failing: the budget stops retry amplification and ejection stays within its percentage', async () => {
  const h = harness({ route: retryRoute });
  const up = simulatedUpstream(h, () => ({ latency: 5, answer: 503 }));
  const chain = compose(buildResiliencePolicies(h.build()), up.handler);
  const outcomes = await load(h, chain, 5, 1000);
  assert.ok(outcomes.every((o) => o.status === 503));
  const ratio = up.attempts() / outcomes.length;
  console.log(`all failing: attempts per request ${ratio.toFixed(3)}`);
  assert.ok(ratio <= 1.25, `attempts per request ${ratio}`);
  const ejected = h.cluster.endpoints.filter((e) => e.ejections > 0).length;
  assert.ok(ejected >= 1, 'outliers were ejected');
  assert.equal(h.cluster.activeRequests, 0);
  assert.equal(h.cluster.activeRetries, 0);
});

test('in chain order a rate-limited request takes no concurrency slot, and overload is answered before the breaker', async () => {
  const h = harness({
    route: { rateLimit: { requestsPerSecond: 1, burst: 3 } },
    cluster: { concurrency: { limit: 2, queue: { max: 0, timeout: '10ms' } }, circuitBreaker: { maxRequests: 1 } },
  });
  const up = simulatedUpstream(h, () => ({ latency: 100, answer: 'ok' }));
  const chain = compose(buildResiliencePolicies(h.build({ rateLimiters: localRateLimiterFactory(h.clock) })), up.handler);
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
