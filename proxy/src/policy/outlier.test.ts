import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attemptResult, buildOutlier } from './outlier.js';
import type { Handler, Outcome } from './types.js';
import { failure, harness, upstreamResponse } from '../../../test/support/policy-fixtures.js';

test('outcomes are classified as Envoy counts them: 5xx, connect failure, reset and timeout are failures', () => {
  const h = harness();
  const ep = h.cluster.endpoints[0]!;
  assert.equal(attemptResult(upstreamResponse(200, ep)), 'success');
  assert.equal(attemptResult(upstreamResponse(404, ep)), 'success');
  assert.equal(attemptResult(upstreamResponse(429, ep)), 'success');
  assert.equal(attemptResult(upstreamResponse(500, ep)), 'failure');
  assert.equal(attemptResult(upstreamResponse(503, ep)), 'failure');
  assert.equal(attemptResult(failure('upstream_connect_failure', ep)), 'failure');
  assert.equal(attemptResult(failure('upstream_reset', ep)), 'failure');
  assert.equal(attemptResult(failure('upstream_timeout', ep)), 'failure');
  assert.equal(attemptResult(failure('client_closed', ep)), 'neutral');
  assert.equal(attemptResult(failure('circuit_open')), 'neutral');
});

test('the per-attempt policy feeds each attempt outcome to the cluster detector and passes the outcome through', async () => {
  const h = harness({ cluster: { outlierDetection: { consecutiveFailures: 2 } } });
  const ep = h.cluster.endpoints[1]!;
  const outcomes: Outcome[] = [upstreamResponse(503, ep), failure('upstream_reset', ep)];
  let i = 0;
  const bottom: Handler = async () => outcomes[i++]!;
  const attempt = buildOutlier(h.build())!(bottom);
  const first = await attempt(h.ctx());
  assert.equal(first, outcomes[0]);
  assert.equal(ep.consecutiveFailures, 1);
  await attempt(h.ctx());
  assert.equal(ep.available(h.clock.now()), false, 'ejected after two failures in a row');
  // A rebuilt chain (new snapshot) keeps the ejection.
  buildOutlier(h.build());
  assert.equal(ep.available(h.clock.now()), false);
});

test('disabled outlier detection builds no policy', () => {
  const h = harness({ cluster: { outlierDetection: { enabled: false } } });
  assert.equal(buildOutlier(h.build()), undefined);
});
