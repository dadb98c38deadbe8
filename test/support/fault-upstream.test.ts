import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { FaultUpstream, seededRandom, type FaultSettings } from './fault-upstream.js';
import { waitFor } from './servers.js';

interface Reply {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
  /** Error code (ECONNRESET, ECONNREFUSED, ...) or message when the exchange failed. */
  error?: string;
  /** Whether the head arrived before the failure. */
  gotHead?: boolean;
}

const agents: Agent[] = [];
after(() => agents.forEach((a) => a.destroy()));

function call(u: FaultUpstream, opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve) => {
    let gotHead = false;
    const req = request(
      { host: u.host, port: u.port, path: opts.path ?? '/query', method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false },
      (res) => {
        gotHead = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: res.statusCode!, error: e.code ?? e.message, gotHead }));
        res.on('aborted', () => resolve({ status: res.statusCode!, error: 'aborted', gotHead }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, gotHead }));
    if (opts.timeoutMs !== undefined) req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.end(opts.body);
  });
}

async function withUpstream(settings: Partial<FaultSettings>, fn: (u: FaultUpstream) => Promise<void>): Promise<void> {
  const u = await FaultUpstream.start({ name: 'a', seed: 42, settings });
  try {
    await fn(u);
  } finally {
    await u.close();
  }
}

test('answers 200 by default and counts requests and accepted sockets', async () => {
  await withUpstream({}, async (u) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    for (let i = 0; i < 3; i++) {
      const r = await call(u, { agent });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body!).upstream, 'a');
      assert.equal(r.headers!['x-upstream'], 'a');
    }
    assert.equal(u.stats.requests, 3);
    assert.equal(u.stats.acceptedSockets, 1, 'keep-alive: one connection for three requests');
    assert.equal(u.stats.statuses.get(200), 3);
    assert.match(u.address, /^127\.0\.0\.1:\d+$/);
  });
});

test('an error rate answers that share of requests with the error status and Retry-After', async () => {
  await withUpstream({ errorRate: 0.2, errorStatus: 503, errorRetryAfter: '2' }, async (u) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    agents.push(agent);
    const replies = await Promise.all(Array.from({ length: 400 }, () => call(u, { agent })));
    const errors = replies.filter((r) => r.status === 503);
    assert.ok(errors.length > 50 && errors.length < 110, `${errors.length} of 400`);
    assert.ok(errors.every((r) => r.headers!['retry-after'] === '2'));
    assert.equal(u.stats.statuses.get(503), errors.length);
    assert.equal(replies.filter((r) => r.status === 200).length, 400 - errors.length);
  });
});

test('a fate deck deals exactly its share of errors in every deck, at random places', async () => {
  await withUpstream({ errorRate: 0.2, fateDeck: 10 }, async (u) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) statuses.push((await call(u, { agent })).status!);
    for (let d = 0; d < 5; d++) {
      assert.equal(statuses.slice(d * 10, d * 10 + 10).filter((s) => s === 503).length, 2, `deck ${d}: ${statuses.slice(d * 10, d * 10 + 10)}`);
    }
    const places = (d: number) => statuses.slice(d * 10, d * 10 + 10).join();
    assert.ok(new Set([0, 1, 2, 3, 4].map(places)).size > 1, 'shuffled, not the same pattern every deck');
  });
});

test('latency: fixed, a uniform range, or a distribution', async () => {
  await withUpstream({ latency: 60 }, async (u) => {
    const t = performance.now();
    await call(u);
    assert.ok(performance.now() - t >= 55, 'answered after the configured latency');
    u.set({ latency: { min: 30, max: 40 } });
    const t2 = performance.now();
    await call(u);
    assert.ok(performance.now() - t2 >= 25);
    let drawn = 0;
    u.set({ latency: (rnd) => (drawn = 20 + rnd()) });
    const t3 = performance.now();
    await call(u);
    assert.ok(drawn >= 20 && drawn < 21);
    assert.ok(performance.now() - t3 >= 15);
  });
});

test('hang: no answer until the client gives up, which is counted as a client abort', async () => {
  await withUpstream({ hangRate: 1 }, async (u) => {
    const r = await call(u, { timeoutMs: 100 });
    assert.equal(r.error, 'CLIENT_TIMEOUT');
    await waitFor('the abort to be seen', async () => u.stats.clientAborts === 1, 2000);
    assert.equal(u.stats.hangs, 1);
    assert.equal(u.stats.inFlight, 0);
  });
});

test('reset before the answer, and in the middle of the body; the request body was received either way', async () => {
  await withUpstream({ resetRate: 1, resetAt: 'before' }, async (u) => {
    const r = await call(u, { method: 'POST', headers: { 'x-request-id': 'r1', 'content-type': 'application/json' }, body: '{"query":"x"}' });
    assert.ok(r.error === 'ECONNRESET' || r.error === 'socket hang up', String(r.error));
    assert.equal(r.gotHead, false);
    assert.equal(u.stats.bodies.get('r1'), 1, 'the bytes reached the upstream before the reset');
    assert.equal(u.stats.resets, 1);
    assert.equal(u.stats.clientAborts, 0, 'our own reset is not a client abort');

    u.set({ resetAt: 'mid' });
    const m = await call(u);
    assert.equal(m.gotHead, true, 'the head arrived');
    assert.equal(m.status, 200);
    assert.ok(m.error, 'then the body broke off');
    await waitFor('in flight to drain', async () => u.stats.inFlight === 0, 2000);
  });
});

test('capacity with overflow reject: requests past it get 503 at once', async () => {
  await withUpstream({ latency: 100, capacity: 2, overflow: 'reject' }, async (u) => {
    const replies = await Promise.all(Array.from({ length: 5 }, () => call(u)));
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 200, 503, 503, 503]);
    assert.equal(u.stats.maxInFlight, 2);
    assert.equal(u.stats.rejectedOverCapacity, 3);
  });
});

test('capacity with overflow queue: requests past it wait their turn', async () => {
  await withUpstream({ latency: 30, capacity: 2, overflow: 'queue' }, async (u) => {
    const pending = Array.from({ length: 6 }, () => call(u));
    await waitFor('a queue', async () => u.stats.queued > 0, 2000);
    const replies = await Promise.all(pending);
    assert.ok(replies.every((r) => r.status === 200));
    assert.equal(u.stats.maxInFlight, 2);
    assert.equal(u.stats.queued, 0);
    // Raising the capacity lets waiting requests start at once.
    u.set({ capacity: 1, latency: 200 });
    const slow = Array.from({ length: 3 }, () => call(u));
    await waitFor('two waiting', async () => u.stats.queued === 2, 2000);
    u.set({ capacity: 10 });
    assert.equal(u.stats.queued, 0);
    assert.equal(u.stats.inFlight, 3);
    await Promise.all(slow);
  });
});

test('a client that leaves the capacity queue frees its place', async () => {
  await withUpstream({ hangRate: 1, capacity: 1, overflow: 'queue' }, async (u) => {
    const first = call(u, { timeoutMs: 400 });
    await waitFor('the first in flight', async () => u.stats.inFlight === 1, 2000);
    const second = await call(u, { timeoutMs: 50 });
    assert.equal(second.error, 'CLIENT_TIMEOUT');
    await waitFor('the queue to empty', async () => u.stats.queued === 0, 2000);
    await first;
    await waitFor('in flight to drain', async () => u.stats.inFlight === 0, 2000);
    assert.equal(u.stats.hangs, 1, 'the queued request never started');
  });
});

test('kill refuses connections and breaks the open ones; restart serves again on the same port', async () => {
  await withUpstream({}, async (u) => {
    const port = u.port;
    u.set({ hangRate: 1 });
    const hanging = call(u);
    await waitFor('the hanging request', async () => u.stats.inFlight === 1, 2000);
    await u.kill();
    assert.equal(u.running, false);
    const broken = await hanging;
    assert.ok(broken.error, 'the open exchange broke');
    assert.equal((await call(u)).error, 'ECONNREFUSED');
    assert.equal(u.stats.inFlight, 0);

    u.set({ hangRate: 0 });
    await u.restart();
    assert.equal(u.port, port);
    assert.equal((await call(u)).status, 200);
  });
});

test('bodies are counted per Idempotency-Key, else per x-request-id; recent heads are kept', async () => {
  await withUpstream({}, async (u) => {
    const post = (headers: Record<string, string>) => call(u, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"query":"select 1"}' });
    await post({ 'idempotency-key': 'k1', 'x-request-id': 'r1' });
    await post({ 'idempotency-key': 'k1', 'x-request-id': 'r2' });
    await post({ 'x-request-id': 'r3' });
    assert.equal(u.stats.bodies.get('k1'), 2);
    assert.equal(u.stats.bodies.get('r3'), 1);
    assert.equal(u.stats.bodies.has('r1'), false);
    assert.equal(u.stats.recentHeaders.at(-1)!['x-request-id'], 'r3');
    u.resetStats();
    assert.equal(u.stats.requests, 0);
  });
});

test('health checks have their own answer: ok, fail or hang, and skip other faults', async () => {
  await withUpstream({ errorRate: 1 }, async (u) => {
    assert.equal((await call(u, { path: '/health' })).status, 200);
    u.set({ health: 'fail' });
    assert.equal((await call(u, { path: '/health' })).status, 503);
    u.set({ health: 'hang' });
    assert.equal((await call(u, { path: '/health', timeoutMs: 50 })).error, 'CLIENT_TIMEOUT');
    assert.equal(u.stats.healthChecks, 3);
    assert.equal(u.stats.requests, 0);
  });
});

test('the seeded generator is repeatable', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const xs = Array.from({ length: 5 }, a);
  assert.deepEqual(xs, Array.from({ length: 5 }, b));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});
