import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyState, createConcurrencyPolicy } from './concurrency.js';
import { Gradient2Limit } from './limits/gradient2.js';
import type { Handler, Outcome, RequestContext } from './types.js';
import { abort, failure, harness, metricValue, settle, upstreamResponse, type Harness } from '../../../test/support/policy-fixtures.js';

/** A bottom handler whose requests stay in flight until the test answers them. */
function held(h: Harness) {
  const waiting: { ctx: RequestContext; answer: (o?: Outcome) => void }[] = [];
  const handler: Handler = (ctx) =>
    new Promise<Outcome>((resolve) => {
      waiting.push({ ctx, answer: (o) => resolve(o ?? upstreamResponse(200, h.cluster.endpoints[0]!)) });
    });
  return { handler, waiting };
}

function staticHarness(limit: number, queue: Record<string, unknown> = { max: 2, timeout: '50ms' }, route: Record<string, unknown> = {}) {
  return harness({ cluster: { concurrency: { limit, queue } }, route });
}

test('a static limit admits up to the limit, queues FIFO up to queue.max, and rejects the rest at once with 503 overloaded and Retry-After', async () => {
  const h = staticHarness(2);
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  const ctxs = Array.from({ length: 5 }, () => h.ctx());
  const results = ctxs.map((c) => handler(c));
  await settle();
  assert.equal(b.waiting.length, 2, 'two admitted');
  assert.equal(await metricValue(h.metrics, 'tsmesh_concurrency_in_flight', { cluster: 'gateway' }), 2);
  assert.equal(await metricValue(h.metrics, 'tsmesh_concurrency_queue_depth', { cluster: 'gateway' }), 2);
  assert.equal(await metricValue(h.metrics, 'tsmesh_concurrency_limit', { cluster: 'gateway' }), 2);

  const fifth = await results[4]!;
  assert.equal(fifth.status, 503);
  assert.equal(fifth.kind === 'local' && fifth.reason, 'overloaded');
  assert.deepEqual(fifth.kind === 'local' && fifth.headers, [['retry-after', '1']]);
  assert.equal(ctxs[4]!.reason, 'overloaded');
  assert.equal(h.clock.now(), 1000, 'rejected without waiting');

  b.waiting[1]!.answer();
  await settle();
  assert.equal(b.waiting.length, 3);
  assert.equal(b.waiting[2]!.ctx, ctxs[2], 'the first queued request gets the slot');
  b.waiting[0]!.answer();
  await settle();
  assert.equal(b.waiting[3]!.ctx, ctxs[3]);
  for (const w of b.waiting.slice(2)) w.answer();
  const statuses = (await Promise.all(results)).map((o) => o.status);
  assert.deepEqual(statuses, [200, 200, 200, 200, 503]);
  const state = h.cluster.stateOf<ConcurrencyState>('concurrency', () => assert.fail('state exists'));
  assert.equal(state.inFlight, 0);
  assert.equal(state.queueLength, 0);
});

test('rejections allocate nothing: every one gets the same settled promise', () => {
  const h = staticHarness(1, { max: 0, timeout: '50ms' });
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  void handler(h.ctx());
  const r1 = handler(h.ctx());
  const r2 = handler(h.ctx());
  assert.equal(r1, r2);
});

test('a queued request gives up after queue.timeout, or sooner at its deadline, with 503 overloaded', async () => {
  const h = staticHarness(1, { max: 10, timeout: '50ms' });
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  void handler(h.ctx());
  const byQueueTimeout = handler(h.ctx({ timeoutMs: 2000 }));
  const byDeadline = handler(h.ctx({ timeoutMs: 20 }));
  await settle();
  await h.clock.tick(20);
  const d = await byDeadline;
  assert.equal(d.kind === 'local' && d.reason, 'overloaded');
  await h.clock.tick(29);
  let settled = false;
  void byQueueTimeout.then(() => (settled = true));
  await settle();
  assert.equal(settled, false);
  await h.clock.tick(1);
  const q = await byQueueTimeout;
  assert.equal(q.kind === 'local' && q.reason, 'overloaded');
  assert.equal(b.waiting.length, 1, 'neither reached the upstream');
  assert.equal(h.clock.pendingTimers, 0);
});

test('a request whose queue wait is predicted to run out is answered 503 at once instead of after queue.timeout', async () => {
  const h = staticHarness(2, { max: 10, timeout: '50ms' });
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  // Requests hold a slot for 40 ms: with 2 slots, one frees every 20 ms on average.
  const first = [handler(h.ctx()), handler(h.ctx())];
  await settle();
  await h.clock.tick(40);
  for (const w of b.waiting.splice(0)) w.answer();
  await Promise.all(first);
  const state = h.cluster.stateOf<ConcurrencyState>('concurrency', () => assert.fail('state exists'));
  assert.equal(state.slotMs, 40);

  const inSlots = [handler(h.ctx()), handler(h.ctx())];
  const start = h.clock.now();
  const second = handler(h.ctx()); // expected wait 20 ms
  const third = handler(h.ctx()); // 40 ms
  const fourth = handler(h.ctx()); // 60 ms > 50 ms: not queued
  const r4 = await fourth;
  assert.equal(r4.kind === 'local' && r4.reason, 'overloaded');
  assert.equal(h.clock.now(), start, 'answered without waiting');
  assert.equal(state.queueLength, 2);

  // The two it queued are admitted as slots free, within the queue timeout.
  await h.clock.tick(20);
  b.waiting[0]!.answer();
  await settle();
  await h.clock.tick(20);
  b.waiting[1]!.answer();
  await settle();
  assert.equal(state.queueLength, 0);
  for (const w of b.waiting.slice(2)) w.answer();
  assert.deepEqual((await Promise.all([...inSlots, second, third])).map((o) => o.status), [200, 200, 200, 200]);
});

test('a request whose deadline has passed is not queued', async () => {
  const h = staticHarness(1);
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  void handler(h.ctx());
  const ctx = h.ctx({ timeoutMs: 0 });
  const r = await handler(ctx);
  assert.equal(r.kind === 'local' && r.reason, 'overloaded');
  assert.equal(h.clock.pendingTimers, 0);
});

test('a client that goes away while queued leaves the queue at once and its turn passes to the next', async () => {
  const h = staticHarness(1, { max: 5, timeout: '1s' });
  const b = held(h);
  const handler = createConcurrencyPolicy(h.build())!(b.handler);
  const first = handler(h.ctx());
  const goneCtx = h.ctx();
  const gone = handler(goneCtx);
  const nextCtx = h.ctx();
  const after = handler(nextCtx);
  await settle();
  assert.ok(goneCtx.cancel);
  abort(goneCtx);
  const g = await gone;
  assert.equal(g.kind === 'local' && g.reason, 'client_closed');
  assert.equal(await metricValue(h.metrics, 'tsmesh_concurrency_queue_depth', { cluster: 'gateway' }), 1);
  b.waiting[0]!.answer();
  await settle();
  assert.equal(b.waiting[1]!.ctx, nextCtx);
  b.waiting[1]!.answer();
  await Promise.all([first, after]);
  assert.equal(h.clock.pendingTimers, 0, 'the cancelled wait left no timer behind');
});

test('an adaptive limit learns from admitted latency (admission to response head) and from drops', async () => {
  const h = harness({ cluster: { concurrency: { adaptive: { algorithm: 'gradient2', initial: 20, min: 4, max: 200 }, queue: { max: 1000, timeout: '10s' } } }, route: { timeout: '60s' } });
  let latency = 10;
  let status = 200;
  const bottom: Handler = (ctx) => new Promise((resolve) => ctx.clock.setTimer(() => resolve(upstreamResponse(status, h.cluster.endpoints[0]!)), latency));
  const handler = createConcurrencyPolicy(h.build())!(bottom);
  const state = h.cluster.stateOf<ConcurrencyState>('concurrency', () => assert.fail());
  // A closed loop of 60 clients keeps the limit saturated.
  let running = true;
  const client = async () => {
    while (running) await handler(h.ctx());
  };
  const clients = Array.from({ length: 60 }, client);
  await h.clock.tick(5000, 5);
  const grown = state.limit;
  assert.ok(grown > 24, `low steady latency: limit grew from 20 to ${grown}`);

  latency = 60;
  await h.clock.tick(5000, 5);
  const shrunk = state.limit;
  assert.ok(shrunk < grown, `latency x6: ${grown} -> ${shrunk}`);

  latency = 10;
  status = 503;
  await h.clock.tick(5000, 5);
  assert.equal(state.limit, 4, `upstream shedding with 503s: the limit falls to its minimum (${state.limit})`);
  assert.equal(await metricValue(h.metrics, 'tsmesh_concurrency_limit', { cluster: 'gateway' }), 4);

  running = false;
  await h.clock.tick(20_000, 5);
  await Promise.all(clients);
  assert.equal(state.inFlight, 0);
  assert.equal(state.queueLength, 0);
});

test('local failures other than timeouts teach the limiter nothing; timeouts are drops', async () => {
  const h = harness({ cluster: { concurrency: { adaptive: { algorithm: 'vegas', initial: 20, min: 4, max: 200 } } } });
  const samples: [number, boolean][] = [];
  const outcomes: Outcome[] = [failure('upstream_connect_failure', h.cluster.endpoints[0]), failure('circuit_open'), failure('upstream_timeout', h.cluster.endpoints[0])];
  let i = 0;
  const bottom: Handler = async (ctx) => {
    h.clock.advance(7);
    void ctx;
    return outcomes[i++]!;
  };
  const handler = createConcurrencyPolicy(h.build(), { random: () => 0.999 })!(bottom);
  const state = h.cluster.stateOf<ConcurrencyState>('concurrency', () => assert.fail());
  state.algorithm = { limit: 20, onSample: (_s, rtt, _f, drop) => void samples.push([rtt, drop]) };
  for (let k = 0; k < 3; k++) await handler(h.ctx());
  assert.deepEqual(samples, [[7, true]]);
});

test('limiter state survives a config swap; changed limit settings start a new estimate but keep the queue and in-flight count', async () => {
  const h = harness({ cluster: { concurrency: { adaptive: { algorithm: 'gradient2', initial: 10, min: 1, max: 100 }, queue: { max: 10, timeout: '1s' } } } });
  const b = held(h);
  const h1 = createConcurrencyPolicy(h.build())!(b.handler);
  const state = h.cluster.stateOf<ConcurrencyState>('concurrency', () => assert.fail());
  const learned = state.algorithm as Gradient2Limit;
  learned.limit = 2; // as if it had learned that
  const a = h1(h.ctx());
  const c = h1(h.ctx());
  const queued = h1(h.ctx());
  await settle();
  assert.equal(b.waiting.length, 2);

  // Same limit settings, other queue settings: the learned limit stays.
  h.cluster.update({ ...h.cluster.config, concurrency: { ...h.cluster.config.concurrency!, queue: { max: 1, timeout: 1000 } } });
  createConcurrencyPolicy(h.build());
  assert.equal(state.algorithm, learned);
  assert.equal(state.limit, 2);

  // A static limit of 3 replaces the estimate; the queued request is admitted by the swap itself.
  h.cluster.update({ ...h.cluster.config, concurrency: { limit: 3, queue: { max: 0, timeout: 1000 } } });
  const h2 = createConcurrencyPolicy(h.build())!(b.handler);
  await settle();
  assert.equal(state.limit, 3);
  assert.equal(b.waiting.length, 3);
  assert.equal(state.inFlight, 3);
  const rejected = await h2(h.ctx());
  assert.equal(rejected.status, 503, 'old requests still count against the new limit');
  for (const w of b.waiting) w.answer();
  await Promise.all([a, c, queued]);
  assert.equal(state.inFlight, 0);
});

test('no concurrency block, no policy', () => {
  assert.equal(createConcurrencyPolicy(harness().build()), undefined);
});
