// Every reason code the proxy answers with, on real sockets: what the client gets, what the
// upstream saw (nothing, for rejected requests), and the metrics.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { ProxyRuntime } from '../proxy/src/runtime.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { RawClient, headerOf, httpGet, metricValue, rawRequest, sleep, startTestProxy, statusOf } from './support/proxy.js';
import { waitFor } from './support/servers.js';

let up: TestUpstream;

before(async () => {
  up = await startUpstream();
});

after(async () => {
  await up?.close();
});

function withProxy(makeDoc: () => Record<string, unknown>, fn: (p: ProxyRuntime, port: number) => Promise<void>): () => Promise<void> {
  return async () => {
    const doc = makeDoc();
    const p = await startTestProxy(doc);
    try {
      await fn(p, p.port(((doc.listeners as Array<{ name: string }>)[0]!).name));
    } finally {
      await p.close();
    }
  };
}

const simple = (cluster: Record<string, unknown>, listener: Record<string, unknown> = {}, route: Record<string, unknown> = {}) => ({
  listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/' } }, cluster: 'c', ...route }], ...listener }],
  clusters: [{ name: 'c', endpoints: [up.address], ...cluster }],
});

test(
  'bad_request: malformed (400), oversized head (431) and body (413) never reach the upstream; the connection closes',
  withProxy(() => simple({}, { maxHeaderBytes: 1024, maxBodyBytes: 100 }), async (p, port) => {
    const before = up.received.length;
    const cases: Array<[string, number]> = [
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\n\r\n', 400],
      [`GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(2000)}\r\n\r\n`, 431],
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n', 413],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n' + 'y'.repeat(101) + '\r\n0\r\n\r\n', 413],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
      ['GET / HTTP/1.1\nHost: a\n\n', 400],
      ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 400],
    ];
    for (const [req, status] of cases) {
      const r = await rawRequest(port, req, 1000);
      assert.equal(statusOf(r.text), status, `${JSON.stringify(req.slice(0, 60))} → ${JSON.stringify(r.text.slice(0, 80))}`);
      assert.equal(headerOf(r.text, 'x-tsmesh-reason'), 'bad_request');
      assert.equal(headerOf(r.text, 'connection'), 'close');
      assert.equal(r.closed, true);
    }
    // Bodies that arrive with their head are checked before the upstream is contacted.
    await sleep(50);
    assert.equal(up.received.length, before, 'a rejected request reached the upstream');
    assert.ok((await metricValue(p, 'tsmesh_requests_total', { reason: 'bad_request' })) >= cases.length);
  }),
);

test(
  'a client that sends its head too slowly gets 408 at the header deadline (slowloris cannot hold the proxy)',
  withProxy(() => simple({}, { headerTimeout: '300ms' }), async (_p, port) => {
    const client = await RawClient.connect(port);
    client.write('GET / HTTP/1.1\r\n');
    const timer = setInterval(() => client.write('X-Slow: 1\r\n'), 50);
    try {
      // The head keeps growing, never complete: only the header deadline closes it (the 408 says so).
      await client.waitClosed(10_000);
    } finally {
      clearInterval(timer);
    }
    assert.equal(statusOf(client.text), 408);
    assert.equal(headerOf(client.text, 'x-tsmesh-reason'), 'bad_request');
  }),
);

test(
  'idle keep-alive connections are closed after the idle timeout',
  withProxy(() => simple({}, { idleTimeout: '200ms' }), async (_p, port) => {
    const client = await RawClient.connect(port);
    client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await client.waitForResponses(1);
    await client.waitClosed(3000);
  }),
);

test(
  'overloaded: above maxConnections a connection is still accepted and answered 503 with Connection: close',
  withProxy(() => simple({}, { maxConnections: 2 }), async (p, port) => {
    const held = [await RawClient.connect(port), await RawClient.connect(port)];
    await sleep(50);
    const r = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(statusOf(r.text), 503);
    assert.equal(headerOf(r.text, 'x-tsmesh-reason'), 'overloaded');
    assert.equal(headerOf(r.text, 'connection'), 'close');
    assert.equal(headerOf(r.text, 'retry-after'), '1');
    assert.equal(await metricValue(p, 'tsmesh_downstream_connections_overflow_total', { listener: 'edge' }), 1);
    for (const c of held) c.close();
    await sleep(50);
    assert.equal((await httpGet(port, '/')).status, 200, 'below the limit again');
  }),
);

test('upstream_connect_failure: 503 when the endpoint refuses connections', async () => {
  // Port 1 is below the ephemeral range, so nothing bound to port 0 in this process can take it:
  // connections to it are always refused.
  const p = await startTestProxy(simple({ endpoints: ['127.0.0.1:1'] }));
  try {
    const r = await httpGet(p.port('edge'), '/');
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-tsmesh-reason'], 'upstream_connect_failure');
    assert.equal(r.headers['x-tsmesh-attempts'], '1');
    assert.equal(await metricValue(p, 'tsmesh_upstream_connect_failures_total', { cluster: 'c' }), 1);
  } finally {
    await p.close();
  }
});

/** A raw TCP upstream whose behaviour per accepted socket is scripted. */
async function rawUpstream(onSocket: (s: Socket, n: number) => void): Promise<{ server: Server; address: string; accepted: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onSocket(s, ++n);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    accepted: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

test('upstream_reset: 502 when the upstream closes before answering; an aborted client connection when it dies mid-body', async () => {
  const raw = await rawUpstream((s) => {
    s.once('data', (d: Buffer) => {
      if (d.toString().startsWith('GET /mid')) {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
        setTimeout(() => s.destroy(), 30);
      } else if (d.toString().startsWith('GET /garbage')) s.end('NOT HTTP\r\n\r\n');
      else s.destroy();
    });
  });
  const p = await startTestProxy(simple({ endpoints: [raw.address] }));
  try {
    const port = p.port('edge');
    const r = await httpGet(port, '/before');
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-tsmesh-reason'], 'upstream_reset');
    const g = await httpGet(port, '/garbage');
    assert.equal(g.status, 502);
    assert.equal(g.headers['x-tsmesh-reason'], 'upstream_reset');
    const mid = await rawRequest(port, 'GET /mid HTTP/1.1\r\nHost: a\r\n\r\n', 2000);
    assert.equal(statusOf(mid.text), 200);
    assert.ok(mid.text.endsWith('partial'));
    assert.equal(mid.closed, true, 'the client connection is aborted, not left waiting for the rest');
    assert.ok((await metricValue(p, 'tsmesh_requests_total', { reason: 'upstream_reset' })) >= 3);
  } finally {
    await p.close();
    await raw.close();
  }
});

test('upstream_timeout: 504 at the route timeout; the upstream request is aborted', async () => {
  const hang = await startUpstream(() => undefined);
  const p = await startTestProxy(simple({ endpoints: [hang.address] }, {}, { timeout: '1s' }));
  try {
    const r = await httpGet(p.port('edge'), '/');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-tsmesh-reason'], 'upstream_timeout');
    await hang.waitForRequests(1);
    // The route's 1 s applied (not the 15 s default): it is the deadline the upstream was given.
    assert.ok(Number(hang.received[0]!.headers['x-tsmesh-timeout-ms']) <= 1000);
    await waitFor('the upstream request aborted', async () => hang.received[0]!.aborted, 5000);
    // A smaller deadline from the caller wins and is passed on.
    const r2 = await httpGet(p.port('edge'), '/', { headers: { 'x-tsmesh-timeout-ms': '300' } });
    assert.equal(r2.status, 504);
    await hang.waitForRequests(2);
    assert.ok(Number(hang.received[1]!.headers['x-tsmesh-timeout-ms']) <= 300, 'the incoming x-tsmesh-timeout-ms lowered the deadline');
  } finally {
    await p.close();
    await hang.close();
  }
});

test('the route timeout also covers the body: a response that stalls after its head aborts the client connection', async () => {
  const stall = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('begin');
  });
  const p = await startTestProxy(simple({ endpoints: [stall.address] }, {}, { timeout: '250ms' }));
  try {
    const r = await rawRequest(p.port('edge'), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 3000);
    assert.equal(statusOf(r.text), 200);
    assert.equal(r.closed, true);
    assert.ok(r.text.endsWith('begin'));
  } finally {
    await p.close();
    await stall.close();
  }
});

test('circuit_open: the cluster breaker thresholds on pending requests and connections', async () => {
  const slow = await startUpstream((_req, res) => setTimeout(() => res.end('slow'), 300));
  const p = await startTestProxy(simple({ endpoints: [slow.address], pool: { maxConnectionsPerEndpoint: 1 }, circuitBreaker: { maxPending: 1 } }));
  try {
    const port = p.port('edge');
    const results = await Promise.all([httpGet(port, '/1'), httpGet(port, '/2'), httpGet(port, '/3')]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503]);
    const rejected = results.find((r) => r.status === 503)!;
    assert.equal(rejected.headers['x-tsmesh-reason'], 'circuit_open');
    assert.equal(slow.accepted, 1, 'one connection, the queued request reused it');
    assert.equal(await metricValue(p, 'tsmesh_circuit_breaker_rejections_total', { cluster: 'c', resource: 'pending' }), 1);
  } finally {
    await p.close();
    await slow.close();
  }
});

test('client_closed: a client that goes away aborts its upstream request at once (499 in the metrics)', async () => {
  const hang = await startUpstream(() => undefined);
  const p = await startTestProxy(simple({ endpoints: [hang.address] }));
  try {
    const client = await RawClient.connect(p.port('edge'));
    client.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    await hang.waitForRequests(1);
    client.close();
    const until = Date.now() + 2000;
    while (!hang.received[0]!.aborted && Date.now() < until) await sleep(10);
    assert.equal(hang.received[0]!.aborted, true, 'the upstream saw its request closed');
    assert.equal(await metricValue(p, 'tsmesh_requests_total', { code: '499', reason: 'client_closed' }), 1);
    assert.equal(await metricValue(p, 'tsmesh_active_requests', { listener: 'edge' }), 0);
  } finally {
    await p.close();
    await hang.close();
  }
});

test('a reused keep-alive connection the upstream closed is retried transparently on a fresh one (GET), not for a POST', async () => {
  // The upstream answers the first request of each connection and closes it silently on the second.
  const raw = await rawUpstream((s) => {
    let served = 0;
    s.on('data', () => {
      if (served++ === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else s.destroy();
    });
  });
  const p = await startTestProxy(simple({ endpoints: [raw.address] }));
  try {
    const port = p.port('edge');
    assert.equal((await httpGet(port, '/1')).status, 200);
    const second = await httpGet(port, '/2');
    assert.equal(second.status, 200, 'the stale connection was retried on a fresh one');
    assert.equal(second.headers['x-tsmesh-attempts'], '1', 'a transparent resend is not a new attempt');
    assert.equal(raw.accepted(), 2);
    assert.equal(await metricValue(p, 'tsmesh_upstream_stale_connection_retries_total', { cluster: 'c' }), 1);
    // A POST without an idempotency key whose bytes went out is not sent twice.
    const post = await httpGet(port, '/3', { method: 'POST', body: 'x' });
    assert.equal(post.status, 502);
    assert.equal(post.headers['x-tsmesh-reason'], 'upstream_reset');
    const keyed = await httpGet(port, '/4', { method: 'POST', body: 'x', headers: { 'idempotency-key': 'k1' } });
    assert.equal(keyed.status, 200, 'with an Idempotency-Key it is replayable');
  } finally {
    await p.close();
    await raw.close();
  }
});

test('the upstream Keep-Alive timeout hint shortens the pool idle time', async () => {
  // The upstream announces "Keep-Alive: timeout=1" but itself keeps idle connections for a
  // minute: whoever closes the connection within the wait below is the proxy.
  const short = await startUpstream(
    (_req, res) => {
      res.writeHead(200, { connection: 'keep-alive', 'keep-alive': 'timeout=1', 'content-length': '2' });
      res.end('ok');
    },
    { keepAliveTimeout: 60_000 },
  );
  const p = await startTestProxy(simple({ endpoints: [short.address] }));
  try {
    const port = p.port('edge');
    assert.equal((await httpGet(port, '/')).status, 200);
    assert.equal(short.openSockets.size, 1);
    // timeout=1: the pool keeps it max(1000-1000, 500) ms, not its 30 s default idle timeout.
    await waitFor('the proxy to close the idle connection', async () => short.openSockets.size === 0, 10_000);
  } finally {
    await p.close();
    await short.close();
  }
});
