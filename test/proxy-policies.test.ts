// The chain seam the policy modules plug into (proxy/src/policy/chain.ts): a test-only retry
// policy and a wrapping policy, passed as `policies` to startProxy, exercise what real ones
// rely on: several attempts per request, discard() of an answer, body replay, failed
// endpoints avoided, ctx.cancel while a policy waits, x-tsmesh-attempts.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyBuilder } from '../proxy/src/policy/chain.js';
import { localResponse, type Handler, type Outcome } from '../proxy/src/policy/types.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { RawClient, httpGet, metricValue, sleep, startTestProxy } from './support/proxy.js';

let good: TestUpstream;
let bad: TestUpstream;

before(async () => {
  good = await startUpstream((_req, res, r) => {
    res.writeHead(200, { 'x-upstream': 'good' });
    res.end(`good:${r.body.toString()}`);
  });
  bad = await startUpstream((_req, res) => {
    res.writeHead(503, { 'x-upstream': 'bad' });
    res.end('shedding');
  });
});

after(async () => {
  await Promise.all([good?.close(), bad?.close()]);
});

/** Retries once on a 503 answer, marking the endpoint failed (a stand-in for the real retry policy). */
const retryOnce: PolicyBuilder = () => (next: Handler) => async (ctx) => {
  let outcome: Outcome = await next(ctx);
  for (let i = 0; i < 2 && outcome.status === 503 && outcome.kind === 'upstream'; i++) {
    if (!ctx.request.idempotent || !ctx.request.replayable) break;
    ctx.failedEndpoints.push(outcome.endpoint);
    outcome.discard();
    outcome = await next(ctx);
  }
  return outcome;
};

/** Waits before the request goes on, registering ctx.cancel like a queue would. */
const waitFirst: PolicyBuilder = () => (next: Handler) => (ctx) =>
  new Promise<Outcome>((resolve) => {
    const t = setTimeout(() => {
      ctx.cancel = undefined;
      resolve(next(ctx));
    }, 100);
    ctx.cancel = () => {
      clearTimeout(t);
      ctx.cancel = undefined;
      resolve(localResponse('client_closed', 499));
    };
  });

const doc = () => ({
  listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/' } }, cluster: 'both' }] }],
  clusters: [{ name: 'both', endpoints: [bad.address, good.address], loadBalancer: 'round-robin' }],
});

test('a retry policy gets a second attempt on another endpoint, with the body replayed', async () => {
  const p = await startTestProxy(doc(), { policies: [retryOnce] });
  try {
    const port = p.port('edge');
    for (let i = 0; i < 4; i++) {
      const r = await httpGet(port, '/x', { method: 'POST', body: 'payload', headers: { 'idempotency-key': `k${i}` } });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'good:payload');
      assert.ok(['1', '2'].includes(String(r.headers['x-tsmesh-attempts'])));
    }
    assert.ok((await metricValue(p, 'tsmesh_upstream_attempts_total', { endpoint: bad.address, code: '503' })) >= 1);
    // A request that is not replayable keeps its first answer.
    const r = await httpGet(port, '/x', { method: 'POST', body: 'once' });
    assert.ok(r.status === 200 || r.status === 503);
    // Connections to the endpoint whose answers were discarded are still usable afterwards.
    assert.equal((await httpGet(port, '/y')).status, 200);
  } finally {
    await p.close();
  }
});

test('a client that leaves while a policy holds its request stops it through ctx.cancel', async () => {
  const p = await startTestProxy(doc(), { policies: [waitFirst] });
  try {
    const before = good.received.length + bad.received.length;
    const client = await RawClient.connect(p.port('edge'));
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(20);
    client.close();
    await sleep(200);
    assert.equal(good.received.length + bad.received.length, before, 'the request never went upstream');
    assert.equal(await metricValue(p, 'tsmesh_requests_total', { reason: 'client_closed' }), 1);
  } finally {
    await p.close();
  }
});
