import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRetryPolicy, parseRetryAfter } from './retry.js';
import { buildBreaker } from './breaker.js';
import { compose, type Handler, type Outcome, type RequestContext } from './types.js';
import type { EndpointState } from '../upstream/endpoint.js';
import { abort, failure, harness, metricValue, settle, upstreamResponse, type FakeUpstreamResponse, type Harness } from '../../../test/support/policy-fixtures.js';

/**
 * A bottom handler doing what the core's upstream handler does with the context (attempt
 * count, requestSent, failed endpoints) and answering from a script: one entry per attempt.
 */
function scripted(h: Harness, script: Array<(ep: EndpointState, ctx: RequestContext) => Outcome>, opts: { sends?: boolean } = {}) {
  const seen: { endpoint: EndpointState; attemptDeadline: number; at: number; avoided: EndpointState[] }[] = [];
  const answers: Outcome[] = [];
  const handler: Handler = async (ctx) => {
    ctx.attempts++;
    // Like a balancer: the first endpoint not in failedEndpoints.
    const ep = h.cluster.endpoints.find((e) => !ctx.failedEndpoints.includes(e)) ?? h.cluster.endpoints[0]!;
    seen.push({ endpoint: ep, attemptDeadline: ctx.attemptDeadline, at: ctx.clock.now(), avoided: [...ctx.failedEndpoints] });
    if (opts.sends ?? true) ctx.requestSent = true;
    const step = script[Math.min(seen.length - 1, script.length - 1)]!;
    const o = step(ep, ctx);
    if (o.kind === 'local' && o.endpoint && !ctx.failedEndpoints.includes(o.endpoint)) ctx.failedEndpoints.push(o.endpoint);
    answers.push(o);
    return o;
  };
  return { handler, seen, answers };
}

const ok = (ep: EndpointState) => upstreamResponse(200, ep);
const status = (s: number, headers: Record<string, string> = {}) => (ep: EndpointState) => upstreamResponse(s, ep, headers);
const local = (reason: Parameters<typeof failure>[0]) => (ep: EndpointState) => failure(reason, ep);

function retryHandler(h: Harness, bottom: Handler, random = () => 0): Handler {
  return compose([buildBreaker(h.build()), createRetryPolicy(h.build(), { random })], bottom);
}

test('a connect failure is retried on another endpoint and the last answer is returned', async () => {
  const h = harness({ route: { retry: { attempts: 2, on: ['connect-failure'] } } });
  const s = scripted(h, [local('upstream_connect_failure'), ok]);
  const ctx = h.ctx();
  const out = await retryHandler(h, s.handler)(ctx);
  assert.equal(out.status, 200);
  assert.equal(ctx.attempts, 2);
  assert.notEqual(s.seen[1]!.endpoint, s.seen[0]!.endpoint, 'the retry went to another endpoint');
  assert.deepEqual(s.seen[1]!.avoided, [s.seen[0]!.endpoint]);
  assert.equal(await metricValue(h.metrics, 'tsmesh_retries_total', { route: 'query', cluster: 'gateway' }), 1);
  assert.equal(h.cluster.activeRetries, 0);
  assert.equal(h.cluster.activeRequests, 0);
});

test('only the listed conditions are retried', async () => {
  const cases: Array<{ on: string[]; statuses?: number[]; step: (ep: EndpointState, ctx: RequestContext) => Outcome; retried: boolean }> = [
    { on: ['connect-failure'], step: local('upstream_connect_failure'), retried: true },
    { on: ['connect-failure'], step: local('upstream_reset'), retried: false },
    { on: ['connect-failure'], step: status(503), retried: false },
    { on: ['reset'], step: local('upstream_reset'), retried: true },
    { on: ['reset'], step: local('upstream_connect_failure'), retried: false },
    { on: ['gateway-error'], step: status(502), retried: true },
    { on: ['gateway-error'], step: status(503), retried: true },
    { on: ['gateway-error'], step: status(504), retried: true },
    { on: ['gateway-error'], step: status(500), retried: false },
    { on: ['gateway-error'], step: status(429), retried: false },
    { on: ['gateway-error'], step: local('upstream_reset'), retried: true },
    { on: ['gateway-error'], step: local('upstream_connect_failure'), retried: true },
    { on: ['retriable-status'], statuses: [409, 503], step: status(409), retried: true },
    { on: ['retriable-status'], statuses: [409], step: status(502), retried: false },
    { on: ['retriable-status'], statuses: [], step: status(503), retried: false },
    { on: ['gateway-error'], step: local('circuit_open'), retried: false },
    { on: ['gateway-error'], step: local('overloaded'), retried: false },
    { on: ['gateway-error', 'connect-failure', 'reset'], step: status(404), retried: false },
  ];
  for (const c of cases) {
    const h = harness({ route: { retry: { attempts: 1, on: c.on, retriableStatuses: c.statuses ?? [] } } });
    const s = scripted(h, [c.step, ok]);
    const ctx = h.ctx();
    await retryHandler(h, s.handler)(ctx);
    const label = `${c.on.join(',')} on ${JSON.stringify(s.answers[0]!.kind === 'local' ? s.answers[0]!.reason : s.answers[0]!.status)}`;
    assert.equal(ctx.attempts, c.retried ? 2 : 1, label);
  }
});

test('attempts counts retries after the first try; a final upstream 503 stays the upstream 503 and earlier answers were discarded', async () => {
  const h = harness({ route: { retry: { attempts: 2, on: ['gateway-error'] } } });
  const s = scripted(h, [status(503)]);
  const ctx = h.ctx();
  const out = await retryHandler(h, s.handler)(ctx);
  assert.equal(ctx.attempts, 3);
  assert.equal(out, s.answers[2], 'the last attempt is the outcome');
  assert.equal(out.kind, 'upstream');
  const answers = s.answers as FakeUpstreamResponse[];
  assert.deepEqual(answers.map((a) => a.discarded), [true, true, false]);
  assert.deepEqual(s.seen.map((x) => x.avoided.length), [0, 1, 2], 'each endpoint that answered 503 is avoided by the next attempt');
});

test('backoff is exponential with full jitter, bounded by max', async () => {
  const h = harness({ route: { timeout: '10s', retry: { attempts: 4, on: ['reset'], backoff: { base: '100ms', max: '300ms' } } } });
  const s = scripted(h, [local('upstream_reset')]);
  // The largest the jitter can draw: pauses approach base*2^(n-1) capped at max.
  const done = retryHandler(h, s.handler, () => 0.999)(h.ctx());
  await settle();
  const starts = () => s.seen.map((x) => x.at - 1000);
  assert.deepEqual(starts(), [0]);
  await h.clock.tick(99);
  assert.deepEqual(starts(), [0], 'retry 1 waits up to base');
  await h.clock.tick(1);
  assert.equal(s.seen.length, 2);
  await h.clock.tick(200);
  assert.equal(s.seen.length, 3, 'retry 2 waits up to 2 x base');
  await h.clock.tick(299);
  assert.equal(s.seen.length, 3, 'retry 3 waits up to max (not 4 x base)');
  await h.clock.tick(1);
  assert.equal(s.seen.length, 4);
  await h.clock.tick(300);
  await done;
  const gaps = starts().slice(1).map((t, i) => Math.round(t - starts()[i]!));
  assert.deepEqual(gaps, [100, 200, 300, 300]);

  // With the jitter's smallest draw the retries follow at once.
  const h2 = harness({ route: { retry: { attempts: 3, on: ['reset'], backoff: { base: '100ms', max: '300ms' } } } });
  const s2 = scripted(h2, [local('upstream_reset')]);
  const ctx2 = h2.ctx();
  await retryHandler(h2, s2.handler, () => 0)(ctx2);
  assert.equal(ctx2.attempts, 4);
  assert.equal(h2.clock.now(), 1000);

  // Uniform draws stay inside [0, cap).
  const h3 = harness({ route: { timeout: '60s', retry: { attempts: 10, on: ['reset'], backoff: { base: '10ms', max: '80ms' } } } });
  const s3 = scripted(h3, [local('upstream_reset')]);
  let seed = 7;
  const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const p3 = retryHandler(h3, s3.handler, lcg)(h3.ctx());
  await h3.clock.tick(2000, 1);
  await p3;
  const t3 = s3.seen.map((x) => x.at);
  t3.slice(1).forEach((t, i) => {
    const cap = Math.min(80, 10 * 2 ** i);
    assert.ok(t - t3[i]! >= 0 && t - t3[i]! <= cap, `retry ${i + 1} paused ${t - t3[i]!} ms, cap ${cap}`);
  });
});

test('Retry-After on a 503 or 429 is honoured when it fits the deadline; otherwise the answer is returned as is', async () => {
  {
    const h = harness({ route: { timeout: '2s', retry: { attempts: 1, on: ['gateway-error'] } } });
    const s = scripted(h, [status(503, { 'retry-after': '1' }), ok]);
    const p = retryHandler(h, s.handler, () => 0)(h.ctx());
    await settle();
    await h.clock.tick(999);
    assert.equal(s.seen.length, 1);
    await h.clock.tick(1);
    assert.equal((await p).status, 200);
    assert.equal(s.seen[1]!.at - s.seen[0]!.at, 1000);
  }
  {
    const h = harness({ route: { timeout: '2s', retry: { attempts: 1, on: ['gateway-error'] } } });
    const s = scripted(h, [status(503, { 'retry-after': '5' }), ok]);
    const out = await retryHandler(h, s.handler, () => 0)(h.ctx());
    assert.equal(s.seen.length, 1, 'no retry: Retry-After is past the deadline');
    assert.equal(out.status, 503);
    assert.equal((out as FakeUpstreamResponse).discarded, false, 'returned as is, body still to be streamed');
    assert.equal(h.cluster.activeRetries, 0);
  }
  {
    const h = harness({ route: { timeout: '2s', retry: { attempts: 1, on: ['retriable-status'], retriableStatuses: [429] } } });
    const wall = Date.parse('2025-01-01T00:00:00Z');
    const s = scripted(h, [status(429, { 'retry-after': 'Wed, 01 Jan 2025 00:00:01 GMT' }), ok]);
    const p = compose([buildBreaker(h.build()), createRetryPolicy(h.build(), { random: () => 0, wallClock: () => wall })], s.handler)(h.ctx());
    await settle();
    await h.clock.tick(1000);
    assert.equal((await p).status, 200);
    assert.equal(s.seen[1]!.at - s.seen[0]!.at, 1000, 'an HTTP-date Retry-After is a pause too');
  }
  assert.equal(parseRetryAfter('120', 0), 120_000);
  assert.equal(parseRetryAfter('soon', 0), undefined);
  assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:00 GMT', 5000), 0);
});

test('a backoff that would end past the deadline is not slept: the answer is returned', async () => {
  const h = harness({ route: { timeout: '100ms', retry: { attempts: 3, on: ['reset'], backoff: { base: '60ms', max: '1s' } } } });
  const s = scripted(h, [
    (ep) => {
      h.clock.advance(30);
      return failure('upstream_reset', ep);
    },
  ]);
  const ctx = h.ctx();
  const p = retryHandler(h, s.handler, () => 0.99)(ctx);
  await h.clock.tick(200, 1);
  const out = await p;
  assert.equal(out.kind === 'local' && out.reason, 'upstream_reset');
  // Attempt 1 ends at 30 ms and sleeps 59.4 ms (ends before 100); attempt 2 ends at 119.4 ms, past the deadline.
  assert.equal(ctx.attempts, 2);
  assert.ok(s.seen.every((x) => x.at < ctx.deadline));
});

test('per-try timeout sets the attempt deadline inside the route deadline, and a per-try timeout is retried', async () => {
  const h = harness({ route: { timeout: '1s', retry: { attempts: 2, on: ['timeout'], perTryTimeout: '400ms' } } });
  // Each attempt "times out" at its attempt deadline, as the core's timer does.
  const s = scripted(h, [
    (ep, ctx) => {
      h.clock.advance(ctx.attemptDeadline - ctx.clock.now());
      return failure('upstream_timeout', ep);
    },
  ]);
  const ctx = h.ctx();
  const out = await retryHandler(h, s.handler)(ctx);
  assert.deepEqual(s.seen.map((x) => x.attemptDeadline - 1000), [400, 800, 1000], 'the last attempt is clamped to the route deadline');
  assert.equal(ctx.attempts, 3);
  assert.equal(out.kind === 'local' && out.reason, 'upstream_timeout');

  // A timeout of the route deadline itself is not retried.
  const h2 = harness({ route: { timeout: '300ms', retry: { attempts: 2, on: ['timeout'], perTryTimeout: '400ms' } } });
  const s2 = scripted(h2, [
    (ep, c) => {
      h2.clock.advance(c.attemptDeadline - c.clock.now());
      return failure('upstream_timeout', ep);
    },
  ]);
  const ctx2 = h2.ctx();
  await retryHandler(h2, s2.handler)(ctx2);
  assert.equal(ctx2.attempts, 1);
  assert.equal(s2.seen[0]!.attemptDeadline, ctx2.deadline);

  // Without 'timeout' (or gateway-error) in `on`, a per-try timeout is final.
  const h3 = harness({ route: { timeout: '1s', retry: { attempts: 2, on: ['reset'], perTryTimeout: '100ms' } } });
  const s3 = scripted(h3, [local('upstream_timeout'), ok]);
  const ctx3 = h3.ctx();
  await retryHandler(h3, s3.handler)(ctx3);
  assert.equal(ctx3.attempts, 1);
});

test('non-idempotent requests: retried only if nothing reached the upstream, or with an Idempotency-Key and a replayable body', async () => {
  const run = async (init: Parameters<Harness['ctx']>[0], sends: boolean, idempotentOnly = true) => {
    const h = harness({ route: { retry: { attempts: 1, on: ['gateway-error'], idempotentOnly } } });
    const s = scripted(h, [local('upstream_reset'), ok], { sends });
    const ctx = h.ctx(init);
    await retryHandler(h, s.handler)(ctx);
    return ctx.attempts;
  };
  assert.equal(await run({ method: 'POST' }, true), 1, 'POST whose bytes reached the upstream: never sent twice');
  assert.equal(await run({ method: 'POST' }, false), 2, 'POST that never reached the upstream: retried');
  assert.equal(await run({ method: 'POST', headers: { 'Idempotency-Key': 'k1' } }, true), 2, 'POST with Idempotency-Key and buffered body');
  assert.equal(await run({ method: 'POST', headers: { 'Idempotency-Key': 'k1' }, replayable: false }, true), 1, 'body too large to keep: not replayable');
  assert.equal(await run({ method: 'PATCH' }, true), 1);
  assert.equal(await run({ method: 'GET' }, true), 2);
  assert.equal(await run({ method: 'PUT', replayable: false }, true), 1, 'even idempotent requests need their body');
  assert.equal(await run({ method: 'POST' }, true, false), 2, 'idempotentOnly: false retries a replayable POST');
  assert.equal(await run({ method: 'POST', replayable: false }, true, false), 1);
});

test('the retry budget stops amplification when every attempt fails; without it retries multiply the load', async () => {
  const run = async (budget: Record<string, unknown>, maxRetries = 3) => {
    const h = harness({
      route: { timeout: '5s', retry: { attempts: 3, on: ['gateway-error'], backoff: { base: '10ms', max: '40ms' }, budget } },
      cluster: { circuitBreaker: { maxRequests: 100_000, maxRetries } },
    });
    let attempts = 0;
    // Every attempt fails with a 503 after 10 ms.
    const bottom: Handler = (ctx) => {
      attempts++;
      ctx.attempts++;
      ctx.requestSent = true;
      return new Promise((resolve) => ctx.clock.setTimer(() => resolve(upstreamResponse(503, h.cluster.endpoints[0]!)), 10));
    };
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const handler = retryHandler(h, bottom, random);
    const done: Promise<Outcome>[] = [];
    // A steady stream: 5 requests per ms for 1 s.
    for (let t = 0; t < 1000; t++) {
      for (let i = 0; i < 5; i++) done.push(handler(h.ctx()));
      await h.clock.tick(1);
    }
    await h.clock.tick(1000, 1);
    const outcomes = await Promise.all(done);
    assert.ok(outcomes.every((o) => o.status === 503), 'every request ends with the upstream 503');
    assert.equal(h.cluster.activeRetries, 0);
    assert.equal(h.cluster.activeRequests, 0);
    const exhausted = await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' });
    return { ratio: attempts / done.length, exhausted };
  };
  const withBudget = await run({});
  console.log(`attempts per request: budget ${withBudget.ratio.toFixed(3)}`);
  assert.ok(withBudget.ratio <= 1.25, `attempts per request with the budget: ${withBudget.ratio}`);
  assert.ok(withBudget.exhausted > 0);
  const fixedCap = await run({ enabled: false }, 1_000_000);
  assert.ok(fixedCap.ratio > 3.5, `without a budget every request is tried 4 times (${fixedCap.ratio})`);
});

test('on a fresh cluster the floor grants the retries that 25 % of a handful of first tries cannot', async () => {
  const run = async (minConcurrent: number) => {
    const h = harness({ route: { retry: { attempts: 2, on: ['gateway-error'], budget: { minConcurrent } } } });
    const s = scripted(h, [status(503)]);
    const ctx = h.ctx();
    await retryHandler(h, s.handler)(ctx);
    return { attempts: ctx.attempts, exhausted: await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' }) };
  };
  // One first try funds 0.25 retries: the first retry is within the ratio (0 < 0.25), the
  // second (1 >= 0.25) only through the floor.
  assert.deepEqual(await run(3), { attempts: 3, exhausted: 0 });
  assert.deepEqual(await run(0), { attempts: 2, exhausted: 1 }, 'without a floor the ratio alone refuses the second retry');
});

test('the floor cannot exceed its cap: minConcurrent retries in flight, minConcurrent x 10 s retries beyond the ratio per window', async () => {
  // percent 0: every retry is beyond the ratio, so only the floor grants (2 in flight, 20 per 10 s).
  const route = (backoff: string) => ({ timeout: '5s', retry: { attempts: 1, on: ['gateway-error'], backoff: { base: backoff, max: backoff }, budget: { percent: 0, minConcurrent: 2 } } });

  // In flight: 10 requests fail at once and back off 50 ms; two retries are granted and held.
  {
    const h = harness({ route: route('100ms') });
    const s = scripted(h, [status(503)]);
    const handler = retryHandler(h, s.handler, () => 0.5);
    const ctxs = Array.from({ length: 10 }, () => h.ctx());
    const ps = ctxs.map((c) => handler(c));
    await settle();
    assert.equal(h.cluster.activeRetries, 2);
    assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_open', { cluster: 'gateway', resource: 'retries' }), 1, 'the floor is full: the retries resource reads open');
    await h.clock.tick(100);
    await Promise.all(ps);
    assert.deepEqual(ctxs.map((c) => c.attempts).sort(), [1, 1, 1, 1, 1, 1, 1, 1, 2, 2]);
    assert.equal(await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' }), 8);
    assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_open', { cluster: 'gateway', resource: 'retries' }), 0, 'nothing in flight, 2 of 20 spent');
  }

  // Per window: one failing request every 100 ms for 25 s, each retry over at once (never two
  // in flight); only 20 retries fit any 10 s window.
  {
    const h = harness({ route: route('0ms') });
    const s = scripted(h, [status(503)]);
    const handler = retryHandler(h, s.handler);
    const retriedAt: number[] = [];
    for (let i = 0; i < 250; i++) {
      const ctx = h.ctx();
      await handler(ctx);
      if (ctx.attempts === 2) retriedAt.push(h.clock.now());
      assert.equal(h.cluster.activeRetries, 0);
      await h.clock.tick(100);
    }
    const mostInAnyWindow = Math.max(...retriedAt.map((t) => retriedAt.filter((u) => u > t - 10_000 && u <= t).length));
    assert.equal(mostInAnyWindow, 20);
    assert.equal(retriedAt.length, 60, 'the first 20 requests of each 10 s are retried');
  }
});

test('with the budget off, circuitBreaker.maxRetries caps concurrent retries', async () => {
  const h = harness({
    route: { timeout: '5s', retry: { attempts: 1, on: ['gateway-error'], backoff: { base: '50ms', max: '50ms' }, budget: { enabled: false } } },
    cluster: { circuitBreaker: { maxRetries: 2 } },
  });
  const bottom: Handler = async (ctx) => {
    ctx.attempts++;
    return upstreamResponse(503, h.cluster.endpoints[0]!);
  };
  const handler = retryHandler(h, bottom, () => 0.5);
  const ctxs = Array.from({ length: 5 }, () => h.ctx());
  const ps = ctxs.map((c) => handler(c));
  await settle();
  assert.equal(h.cluster.activeRetries, 2);
  await h.clock.tick(100);
  await Promise.all(ps);
  assert.deepEqual(ctxs.map((c) => c.attempts).sort(), [1, 1, 1, 2, 2]);
  assert.equal(await metricValue(h.metrics, 'tsmesh_circuit_breaker_rejections_total', { cluster: 'gateway', resource: 'retries' }), 3);
  assert.equal(await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' }), 0);
});

test('a client that goes away during the backoff stops the retry at once', async () => {
  const h = harness({ route: { timeout: '5s', retry: { attempts: 2, on: ['reset'], backoff: { base: '1s', max: '1s' } } } });
  const s = scripted(h, [local('upstream_reset'), ok]);
  const ctx = h.ctx();
  const p = retryHandler(h, s.handler, () => 0.5)(ctx);
  await settle();
  assert.equal(h.cluster.activeRetries, 1, 'the granted retry counts as in flight while it waits');
  assert.ok(ctx.cancel, 'the backoff registered how to stop it');
  abort(ctx);
  const out = await p;
  assert.equal(out.kind === 'local' && out.reason, 'client_closed');
  assert.equal(s.seen.length, 1);
  assert.equal(h.cluster.activeRetries, 0);
  assert.equal(h.clock.pendingTimers, 0, 'the backoff timer was cancelled');
});

test('a route with perTryTimeout and no retries still bounds the attempt', async () => {
  const h = harness({ route: { timeout: '2s', retry: { attempts: 0, perTryTimeout: '250ms' } } });
  const s = scripted(h, [status(503)]);
  const ctx = h.ctx();
  await retryHandler(h, s.handler)(ctx);
  assert.equal(s.seen[0]!.attemptDeadline, ctx.startTime + 250);
  assert.equal(ctx.attempts, 1);
  assert.equal(createRetryPolicy(harness().build()), undefined, 'no retry block, no policy');
  assert.equal(createRetryPolicy(harness({ route: { retry: { attempts: 0 } } }).build()), undefined, 'nothing to do, no policy');
});
