import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildBreaker } from './breaker.js';
import type { Outcome, RequestContext } from './types.js';
import { harness, metricValue, upstreamResponse } from '../../../test/support/policy-fixtures.js';

function deferred(): { promise: Promise<Outcome>; resolve: (o: Outcome) => void } {
  let resolve!: (o: Outcome) => void;
  const promise = new Promise<Outcome>((r) => (resolve = r));
  return { promise, resolve };
}

test('requests beyond maxRequests are answered 503 circuit_open at once, and admitted again when one finishes', async () => {
  const h = harness({ cluster: { circuitBreaker: { maxRequests: 2 } } });
  const ep = h.cluster.endpoints[0]!;
  const pending: ReturnType<typeof deferred>[] = [];
  let calls = 0;
  const handler = buildBreaker(h.build())((_ctx: RequestContext) => {
    calls++;
    const d = deferred();
    pending.push(d);
    return d.promise;
  });

  const a = handler(h.ctx());
  const b = handler(h.ctx());
  assert.equal(h.cluster.activeRequests, 2);
  assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_open', { cluster: 'gateway', resource: 'requests' }), 1);

  const rejectedCtx = h.ctx();
  const rejected = await handler(rejectedCtx);
  assert.equal(rejected.kind, 'local');
  assert.equal(rejected.status, 503);
  assert.equal(rejected.kind === 'local' && rejected.reason, 'circuit_open');
  assert.equal(rejectedCtx.reason, 'circuit_open');
  assert.equal(calls, 2, 'the rejected request never reached next');
  assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_rejections_total', { cluster: 'gateway', resource: 'requests' }), 1);

  pending[0]!.resolve(upstreamResponse(200, ep));
  assert.equal((await a).status, 200);
  assert.equal(h.cluster.activeRequests, 1);
  assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_open', { cluster: 'gateway', resource: 'requests' }), 0);

  const c = handler(h.ctx());
  assert.equal(calls, 3);
  pending[1]!.resolve(upstreamResponse(200, ep));
  pending[2]!.resolve(upstreamResponse(201, ep));
  assert.equal((await b).status, 200);
  assert.equal((await c).status, 201);
  assert.equal(h.cluster.activeRequests, 0);
});

test('the active-request count survives a rebuild (config swap): the new snapshot sees requests of the old one', async () => {
  const h = harness({ cluster: { circuitBreaker: { maxRequests: 1 } } });
  const d = deferred();
  const oldHandler = buildBreaker(h.build())(() => d.promise);
  const inFlight = oldHandler(h.ctx());
  const newHandler = buildBreaker(h.build())(async () => upstreamResponse(200, h.cluster.endpoints[0]!));
  const r = await newHandler(h.ctx());
  assert.equal(r.kind === 'local' && r.reason, 'circuit_open');
  d.resolve(upstreamResponse(200, h.cluster.endpoints[0]!));
  await inFlight;
  assert.equal((await newHandler(h.ctx())).status, 200);
});
