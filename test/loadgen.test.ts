// The load generator against a real HTTP server on a loopback port: every way a request can
// end lands in its class, the open model counts from the intended send time, runs stop by
// themselves, and the child-process mode returns the same JSON.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { queryRequest, queryTexts, runLoad, runLoadInChild } from '../bench/loadgen/index.js';

describe('load generator', () => {
  let server: Server;
  let base: string;
  const bodies: string[] = [];

  const seenSockets = new WeakSet<object>();

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        if (req.method === 'POST') bodies.push(Buffer.concat(chunks).toString());
        const delay = /^\/slow\/(\d+)/.exec(path);
        if (delay) {
          setTimeout(() => res.end('slow'), Number(delay[1]));
          return;
        }
        if (path === '/first-slow') {
          // The first request of each connection waits, as one does behind a busy accept queue.
          const first = !seenSockets.has(req.socket);
          seenSockets.add(req.socket);
          setTimeout(() => res.end('ok'), first ? 300 : 0);
          return;
        }
        switch (path) {
          case '/ok':
          case '/query':
            res.setHeader('Content-Length', 2);
            res.end('ok');
            return;
          case '/chunked':
            res.write('part one;');
            setImmediate(() => res.end('part two'));
            return;
          case '/close':
            res.setHeader('Connection', 'close');
            res.end('bye');
            return;
          case '/shed':
            res.writeHead(503, { 'x-tsmesh-reason': 'overloaded', 'Retry-After': '1' }).end('{}');
            return;
          case '/limited':
            res.writeHead(429, { 'x-tsmesh-reason': 'rate_limited' }).end('{}');
            return;
          case '/app500':
            res.writeHead(500).end('boom');
            return;
          case '/missing':
            res.writeHead(404).end('no');
            return;
          case '/reset':
            req.socket.resetAndDestroy();
            return;
          case '/hang':
            return; // never answers
        }
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  });

  it('closed model warm-up: the window measures users already connected, on the same connections', async () => {
    const cold = await runLoad({ model: 'closed', url: `${base}/first-slow`, users: 4, durationMs: 400 });
    assert.ok(cold.latencyMs!.max >= 290, `a fresh run records the first requests: max ${cold.latencyMs!.max} ms`);
    const warm = await runLoad({ model: 'closed', url: `${base}/first-slow`, users: 4, durationMs: 400, warmupMs: 500 });
    assert.equal(warm.connections.opened, 4, 'the window reuses the warm-up connections');
    // Below the 300 ms of a first request: none of them is in the window (a stall of the
    // machine would have to last 290 ms to blur the two).
    assert.ok(warm.requests > 0 && warm.latencyMs!.max < 290, `max ${warm.latencyMs?.max} ms over ${warm.requests} requests`);
    assert.ok(warm.elapsedMs < 1000, `elapsed counts from the window: ${warm.elapsedMs} ms`);
  });

  it('closed model: users keep their connection, bounded by a request count', async () => {
    const r = await runLoad({ model: 'closed', url: `${base}/ok`, users: 4, durationMs: 10_000, maxRequests: 200 });
    assert.equal(r.requests, 200);
    assert.equal(r.ok, 200);
    assert.equal(r.successPct, 100);
    assert.equal(r.connections.opened, 4);
    assert.equal(r.latencyMs?.count, 200);
    assert.ok(r.latencyMs!.p50 <= r.latencyMs!.p95 && r.latencyMs!.p95 <= r.latencyMs!.p99 && r.latencyMs!.p99 <= r.latencyMs!.max);
    assert.equal(r.errors.total, 0);
  });

  it('closed model: stops by itself after the duration', async () => {
    const r = await runLoad({ model: 'closed', url: `${base}/chunked`, users: 2, durationMs: 300 });
    assert.ok(r.requests > 0);
    assert.equal(r.ok, r.requests); // chunked bodies read to their end
    assert.equal(r.durationMs, 300);
  });

  it('sends varying bodies from the function, one call per request', async () => {
    bodies.length = 0;
    const r = await runLoad({ model: 'closed', url: base, request: queryRequest({ distinct: 50 }), users: 3, durationMs: 10_000, maxRequests: 300 });
    assert.equal(r.ok, 300);
    assert.equal(bodies.length, 300);
    const known = new Set(queryTexts({ distinct: 50 }));
    const seen = new Set(bodies.map((b) => (JSON.parse(b) as { query: string }).query));
    for (const q of seen) assert.ok(known.has(q), q);
    assert.ok(seen.size > 10, `only ${seen.size} distinct queries`);
  });

  it('reconnects after Connection: close', async () => {
    const r = await runLoad({ model: 'closed', url: `${base}/close`, users: 2, durationMs: 10_000, maxRequests: 20 });
    assert.equal(r.ok, 20);
    assert.equal(r.connections.opened, 20);
  });

  it('classifies answers: tsmesh rejections by reason, app 5xx, 4xx', async () => {
    const shed = await runLoad({ model: 'closed', url: `${base}/shed`, users: 2, durationMs: 10_000, maxRequests: 10 });
    assert.equal(shed.ok, 0);
    assert.equal(shed.successPct, 0);
    assert.equal(shed.tsmesh.overloaded?.count, 10);
    assert.deepEqual(shed.tsmesh.overloaded?.statuses, { 503: 10 });
    assert.equal(typeof shed.tsmesh.overloaded?.p99Ms, 'number');
    assert.equal(shed.errors.http5xx, 0, 'a tsmesh 503 is not an app 5xx');

    const limited = await runLoad({ model: 'closed', url: `${base}/limited`, users: 1, durationMs: 10_000, maxRequests: 5 });
    assert.deepEqual(limited.tsmesh.rate_limited?.statuses, { 429: 5 });

    const app = await runLoad({ model: 'closed', url: `${base}/app500`, users: 1, durationMs: 10_000, maxRequests: 5, errorBackoffMs: 0 });
    assert.equal(app.errors.http5xx, 5);
    assert.equal(app.errors.total, 5);
    assert.deepEqual(app.statuses, { 500: 5 });

    const missing = await runLoad({ model: 'closed', url: `${base}/missing`, users: 1, durationMs: 10_000, maxRequests: 5, errorBackoffMs: 0 });
    assert.equal(missing.errors.http4xx, 5);
  });

  it('pauses after an error answer only when asked (k6 does not)', async () => {
    // Timers never fire early: in 450 ms a user pausing 200 ms after each 503 sends at most 3.
    const paused = await runLoad({ model: 'closed', url: `${base}/shed`, users: 1, durationMs: 450, errorAnswerBackoffMs: 200 });
    assert.ok(paused.requests >= 1 && paused.requests <= 3, `${paused.requests} requests`);
    const ok = await runLoad({ model: 'closed', url: `${base}/ok`, users: 1, durationMs: 450, maxRequests: 10, errorAnswerBackoffMs: 200 });
    assert.equal(ok.requests, 10, 'successes are not followed by a pause');
    const eager = await runLoad({ model: 'closed', url: `${base}/shed`, users: 1, durationMs: 10_000, maxRequests: 10 });
    assert.equal(eager.requests, 10);
  });

  it('classifies connection resets', async () => {
    const r = await runLoad({ model: 'closed', url: `${base}/reset`, users: 2, durationMs: 10_000, maxRequests: 6, errorBackoffMs: 0 });
    assert.equal(r.errors.reset, 6);
    assert.equal(r.requests, 6);
    assert.ok((r.socketErrors.ECONNRESET ?? 0) + (r.socketErrors.EOF ?? 0) + (r.socketErrors.CLOSED ?? 0) === 6, JSON.stringify(r.socketErrors));
  });

  it('classifies refused connections, with a back-off between attempts', async () => {
    const port = 1; // below the ephemeral range: nothing listens there
    const r = await runLoad({ model: 'closed', url: `http://127.0.0.1:${port}/`, users: 3, durationMs: 10_000, maxRequests: 9, errorBackoffMs: 1 });
    assert.equal(r.errors.refused, 9);
    assert.deepEqual(r.socketErrors, { ECONNREFUSED: 9 });
    assert.equal(r.successPct, 0);
  });

  it('times requests out at the client time-out and goes on', async () => {
    const r = await runLoad({ model: 'closed', url: `${base}/hang`, users: 2, durationMs: 10_000, maxRequests: 4, timeoutMs: 100, errorBackoffMs: 0 });
    assert.equal(r.errors.timeout, 4);
    assert.equal(r.requests, 4);
  });

  it('open model: issues rate x duration requests', async () => {
    const r = await runLoad({ model: 'open', url: `${base}/ok`, rate: 200, durationMs: 500 });
    assert.equal(r.open?.intended, 100);
    assert.equal(r.requests, 100);
    assert.equal(r.ok, 100);
  });

  it('open model: time spent waiting for a connection is on the record (no coordinated omission)', async () => {
    // One connection, 50 ms per answer, 100 requests/s for 0.5 s: the 50th request is intended
    // at ~490 ms but cannot be sent before ~2450 ms.
    const r = await runLoad({ model: 'open', url: `${base}/slow/50`, rate: 100, durationMs: 500, maxConnections: 1 });
    assert.equal(r.requests, 50);
    assert.equal(r.ok, 50);
    assert.equal(r.connections.opened, 1);
    assert.ok(r.open!.maxBacklog > 0);
    assert.ok(r.open!.sentLate > 0);
    assert.ok(r.latencyMs!.max >= 1500, `max latency ${r.latencyMs!.max} ms does not include the wait`);
  });

  it('open model: maxRequests also bounds requests still waiting for a connection', async () => {
    const r = await runLoad({ model: 'open', url: `${base}/slow/50`, rate: 200, durationMs: 1000, maxRequests: 10, maxConnections: 1 });
    assert.equal(r.requests, 10);
    assert.equal(r.open!.intended, 10);
  });

  it('open model: requests that cannot be sent within the time-out count as time-outs', async () => {
    const r = await runLoad({ model: 'open', url: `${base}/hang`, rate: 100, durationMs: 300, maxConnections: 2, timeoutMs: 150 });
    assert.equal(r.requests, 30);
    assert.equal(r.errors.timeout, 30);
    assert.ok(r.open!.expiredUnsent > 0);
    assert.equal(r.socketErrors.UNSENT, r.open!.expiredUnsent);
  });

  it('runs as a child process and returns the same JSON', async () => {
    const r = await runLoadInChild({ model: 'closed', url: base, request: { method: 'POST', path: '/query', headers: { 'Content-Type': 'application/json' }, body: { kind: 'queries', distinct: 20 } }, users: 2, durationMs: 10_000, maxRequests: 50 });
    assert.equal(r.model, 'closed');
    assert.equal(r.ok, 50);
    assert.equal(typeof r.cpuMs.user, 'number');
  });

  it('rejects bad options with a clear error', async () => {
    await assert.rejects(runLoad({ model: 'closed', url: base, users: 0, durationMs: 100 }), /users must be a positive integer/);
    await assert.rejects(runLoad({ model: 'open', url: base, rate: -1, durationMs: 100 }), /rate must be a positive/);
    await assert.rejects(runLoad({ model: 'open', url: 'https://x/', rate: 1, durationMs: 100 }), /only http/);
    await assert.rejects(runLoadInChild({ model: 'closed', url: base, users: 0, durationMs: 100 }), /users must be a positive integer/);
  });
});
