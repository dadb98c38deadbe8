// One trace across two hops, over real sockets, exported to the real OTLP receiver: a client →
// hop A → hop B → upstream. The hops are small node:http forwarders that call the tracing API
// exactly as the proxy core does (tracing.ts, "How the core uses it"), so this checks the
// tracing API on its own; proxy-trace-chain.test.ts does the same with two real proxies.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { tracing as tracingSchema } from '../../proxy/src/config/schema.js';
import { createTracer, PROPAGATION_HEADERS, type Tracer } from '../../proxy/src/telemetry/tracing.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as { port: number }).port;
}

interface Answer {
  status: number;
  body: string;
}

/** Forwards with the given headers; resolves with the upstream's status, or undefined when it could not connect. */
function forward(port: number, method: string, path: string, headers: Record<string, string>): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/**
 * A hop: routes everything to `route`/`cluster`, tries `endpoints` in order (a retry per
 * failure: 503 or no connection), rejects with 429 rate_limited when the path is /limited.
 */
async function startHop(tracer: Tracer, name: string, endpoints: () => number[]): Promise<number> {
  const server = createServer((req: IncomingMessage, res) => {
    void (async () => {
      const request = { method: req.method!, target: req.url!, header: (n: string) => req.headers[n] as string | undefined };
      const span = tracer.startRequest(request, { listener: name, clientAddress: req.socket.remoteAddress, clientPort: req.socket.remotePort, serverPort: req.socket.localPort });
      if (req.url === '/limited') {
        span?.setRoute('limited', 'gateway');
        span?.end(429, 'rate_limited');
        res.writeHead(429, { 'x-tsmesh-reason': 'rate_limited' }).end();
        return;
      }
      span?.setRoute('query', 'gateway');
      const ports = endpoints();
      for (let i = 0; i < ports.length; i++) {
        // Incoming headers pass on, minus hop-by-hop ones, minus trace headers when the tracer sends its own.
        const headers: Record<string, string> = {};
        const attempt = span?.startAttempt(i + 1, `127.0.0.1:${ports[i]}`);
        for (const [k, v] of Object.entries(req.headers)) {
          if (k === 'connection' || k === 'host' || typeof v !== 'string') continue;
          if (attempt && PROPAGATION_HEADERS.includes(k)) continue;
          headers[k] = v;
        }
        if (attempt) for (let h = 0; h < attempt.headers.length; h += 2) headers[attempt.headers[h]!] = attempt.headers[h + 1]!;
        const answer = await forward(ports[i]!, req.method!, req.url!, headers);
        attempt?.end(answer?.status, answer ? 'none' : 'upstream_connect_failure');
        if (answer && answer.status !== 503) {
          span?.end(answer.status, 'none');
          res.writeHead(answer.status).end(answer.body);
          return;
        }
      }
      span?.end(503, 'upstream_connect_failure');
      res.writeHead(503, { 'x-tsmesh-reason': 'upstream_connect_failure' }).end();
    })();
  });
  return listen(server);
}

test('a trace across two hops: parent/child links, retries as attempt spans, reasons, and the upstream sees the last attempt', async () => {
  const receiver: OtlpReceiver = await startOtlpReceiver();
  closers.push(() => receiver.close());
  const cfg = (serviceName: string) => tracingSchema.parse({ enabled: true, endpoint: receiver.tracesUrl, serviceName, exportInterval: '20ms' });
  const tracerA = (await createTracer(cfg('hop-a')))!;
  const tracerB = (await createTracer(cfg('hop-b')))!;
  closers.push(() => tracerA.shutdown(), () => tracerB.shutdown());

  // The upstream answers 503 to the first request it sees, then 200, and records trace headers.
  const seen: Array<Record<string, string | undefined>> = [];
  const upstream = createServer((req, res) => {
    seen.push({ traceparent: req.headers.traceparent as string, tracestate: req.headers.tracestate as string, baggage: req.headers.baggage as string });
    res.writeHead(seen.length === 1 ? 503 : 200).end('ok');
  });
  const upstreamPort = await listen(upstream);
  const failingPort = await listen(createServer((_, res) => res.writeHead(503).end()));
  const portB = await startHop(tracerB, 'b', () => [upstreamPort, upstreamPort]);
  const portA = await startHop(tracerA, 'a', () => [failingPort, portB]);

  const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const callerSpan = '00f067aa0ba902b7';
  const answer = await forward(portA, 'POST', '/query', { traceparent: `00-${callerTrace}-${callerSpan}-01`, tracestate: 'vendor=1', baggage: 'tenant=acme' });
  assert.equal(answer?.status, 200);
  const limited = await forward(portA, 'GET', '/limited', { traceparent: `00-${callerTrace}-${callerSpan}-01` });
  assert.equal(limited?.status, 429);
  await tracerA.forceFlush();
  await tracerB.forceFlush();

  // A: server + 2 attempts (503 from a failing endpoint, then B); B: server + 2 attempts; A: one rejected request.
  const spans = await receiver.waitForSpans(7, (s) => s.traceId === callerTrace);
  const byService = (svc: string, kind: string) => spans.filter((s) => s.resource['service.name'] === svc && s.kind === kind);
  const [aServer] = byService('hop-a', 'server').filter((s) => s.attributes['tsmesh.route'] === 'query');
  const aAttempts = byService('hop-a', 'client');
  const [bServer] = byService('hop-b', 'server');
  const bAttempts = byService('hop-b', 'client');
  assert.ok(aServer && bServer);
  assert.equal(aServer.parentSpanId, callerSpan);
  assert.deepEqual(aAttempts.map((s) => [s.parentSpanId, s.attributes['tsmesh.attempt'], s.attributes['http.response.status_code']]).sort(), [
    [aServer.spanId, 1, 503],
    [aServer.spanId, 2, 200],
  ]);
  const aToB = aAttempts.find((s) => s.attributes['tsmesh.attempt'] === 2)!;
  assert.equal(bServer.parentSpanId, aToB.spanId, "B's server span is the child of A's second attempt");
  assert.equal(bServer.traceState, 'vendor=1');
  assert.deepEqual(bAttempts.map((s) => [s.parentSpanId, s.attributes['tsmesh.attempt'], s.attributes['http.response.status_code'], s.status.code]).sort(), [
    [bServer.spanId, 1, 503, 'error'],
    [bServer.spanId, 2, 200, 'unset'],
  ]);
  assert.equal(aServer.attributes['tsmesh.attempts'], 2);
  assert.equal(bServer.attributes['tsmesh.attempts'], 2);

  // What the upstream received: B's attempts, each with its own span id, and the caller's state and baggage.
  assert.equal(seen.length, 2);
  for (const [i, h] of seen.entries()) {
    const attempt = bAttempts.find((s) => s.attributes['tsmesh.attempt'] === i + 1)!;
    assert.deepEqual(h, { traceparent: `00-${callerTrace}-${attempt.spanId}-01`, tracestate: 'vendor=1', baggage: 'tenant=acme' });
  }

  // The rejected request: a server span with its reason, no attempt.
  const rejected = spans.find((s: ReceivedSpan) => s.attributes['tsmesh.route'] === 'limited')!;
  assert.equal(rejected.attributes['tsmesh.reason'], 'rate_limited');
  assert.equal(rejected.attributes['http.response.status_code'], 429);
  assert.equal(receiver.children(rejected).length, 0);

  // One trace: every span reaches the caller's span through its parents.
  const ids = new Map(spans.map((s) => [s.spanId, s]));
  for (const s of spans) {
    let p: ReceivedSpan | undefined = s;
    let hops = 0;
    while (p && p.parentSpanId !== callerSpan && hops++ < 10) p = ids.get(p.parentSpanId!);
    assert.equal(p?.parentSpanId, callerSpan, `${s.name} is not linked to the caller`);
  }
});
