// Tracing in the running proxy, end to end: a client → proxy A → proxy B → upstream, two real
// proxies (startProxy) on real sockets, their default policy chains (retry, rate limit), exporting to
// the real OTLP receiver. Checks one trace with the right parent/child links across both
// proxies, retries as separate attempt spans, reasons on rejected requests' spans, what the
// upstream receives (the last attempt's traceparent, the caller's tracestate and baggage), the
// pass-through of an unsampled caller, the access log's trace id, and a tracer re-created when
// the tracing config changes (and gone when it is switched off).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProxyRuntime } from '../../proxy/src/runtime.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import { httpGet, startTestProxy, testConfig } from '../support/proxy.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

let receiver: OtlpReceiver;
let upstream: TestUpstream;
let proxyA: ProxyRuntime;
let proxyB: ProxyRuntime;
let logDir: string;
/** The trace headers each upstream request carried, in arrival order. */
const seen: Array<{ url: string; traceparent?: string; tracestate?: string; baggage?: string }> = [];

const tracing = (serviceName: string, extra: Record<string, unknown> = {}) => ({ enabled: true, endpoint: receiver.tracesUrl, serviceName, exportInterval: '20ms', ...extra });
const retryFast = { attempts: 1, backoff: { base: '1ms', max: '1ms' } };

function docB(tracingDoc: Record<string, unknown>): Record<string, unknown> {
  return {
    listeners: [{ name: 'b', routes: [{ name: 'query', match: { path: { prefix: '/query' } }, cluster: 'app', retry: retryFast }] }],
    clusters: [{ name: 'app', endpoints: [upstream.address], loadBalancer: 'round-robin' }],
    tracing: tracingDoc,
  };
}

before(async () => {
  receiver = await startOtlpReceiver();
  cleanup.push(() => receiver.close());
  // The upstream answers 503 to the first /query?x=1 it sees (B retries), then 200.
  let queries = 0;
  upstream = await startUpstream((req, res) => {
    seen.push({ url: req.url ?? '', traceparent: req.headers.traceparent as string | undefined, tracestate: req.headers.tracestate as string | undefined, baggage: req.headers.baggage as string | undefined });
    if (req.url === '/query?x=1' && ++queries === 1) res.writeHead(503).end('try again');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  cleanup.push(() => upstream.close());
  proxyB = await startTestProxy(docB(tracing('proxy-b')));
  cleanup.push(() => proxyB.close());
  const dead = 1; // below the ephemeral range: nothing binds it, a connection is refused
  logDir = mkdtempSync(join(tmpdir(), 'tsmesh-trace-log-'));
  cleanup.push(async () => rmSync(logDir, { recursive: true, force: true }));
  proxyA = await startTestProxy(
    {
      listeners: [
        {
          name: 'a',
          routes: [
            { name: 'dead', match: { path: { prefix: '/dead' } }, cluster: 'dead', retry: retryFast },
            { name: 'limited', match: { path: { prefix: '/query/limited' } }, cluster: 'mesh', rateLimit: { requestsPerSecond: 0.001, burst: 1 } },
            { name: 'mesh', match: { path: { prefix: '/' } }, cluster: 'mesh' },
          ],
        },
      ],
      clusters: [
        { name: 'mesh', endpoints: [`127.0.0.1:${proxyB.port('b')}`] },
        { name: 'dead', endpoints: [`127.0.0.1:${dead}`], connectTimeout: '500ms' },
      ],
      tracing: tracing('proxy-a'),
      accessLog: { enabled: true, path: join(logDir, 'a.log') },
    },
  );
  cleanup.push(() => proxyA.close());
});

const svc = (s: ReceivedSpan) => s.resource['service.name'];

test('one trace across two real proxies: parent/child links, B retries as a separate attempt span, the upstream sees the last attempt', async () => {
  const r = await httpGet(proxyA.port('a'), '/query?x=1', {
    method: 'POST',
    body: '{"q":1}',
        // An Idempotency-Key makes the POST retriable once its body reached the upstream.
    headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, tracestate: 'vendor=1', baggage: 'tenant=acme', 'content-type': 'application/json', 'idempotency-key': 'k1' },
  });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['x-tsmesh-attempts'], '2, 1', "B's two attempts, then A's one (each hop adds its own)");

  // A: server + 1 attempt; B: server + 2 attempts (503, then 200).
  const spans = await receiver.waitForSpans(5, (s) => s.traceId === CALLER_TRACE && (svc(s) === 'proxy-a' || svc(s) === 'proxy-b'));
  assert.equal(spans.length, 5, spans.map((s) => `${svc(s)} ${s.kind} ${s.name}`).join(', '));
  const one = (service: string, kind: string) => {
    const found = spans.filter((s) => svc(s) === service && s.kind === kind);
    return found;
  };
  const [aServer] = one('proxy-a', 'server');
  const aAttempts = one('proxy-a', 'client');
  const [bServer] = one('proxy-b', 'server');
  const bAttempts = one('proxy-b', 'client').sort((x, y) => Number(x.attributes['tsmesh.attempt']) - Number(y.attributes['tsmesh.attempt']));
  assert.ok(aServer && bServer);

  // Links: caller → A server → A attempt → B server → B attempts.
  assert.equal(aServer.parentSpanId, CALLER_SPAN);
  assert.equal(aAttempts.length, 1);
  assert.equal(aAttempts[0]!.parentSpanId, aServer.spanId);
  assert.equal(bServer.parentSpanId, aAttempts[0]!.spanId, "B's server span is the child of A's attempt");
  assert.deepEqual(
    bAttempts.map((s) => [s.parentSpanId, s.attributes['tsmesh.attempt'], s.attributes['http.response.status_code'], s.status.code]),
    [
      [bServer.spanId, 1, 503, 'error'],
      [bServer.spanId, 2, 200, 'unset'],
    ],
  );
  assert.equal(bAttempts[1]!.attributes['http.request.resend_count'], 1);

  // Attributes: route, cluster, attempts, the standard HTTP ones; the caller's tracestate kept.
  assert.equal(aServer.name, 'POST mesh');
  assert.equal(aServer.kind, 'server');
  assert.equal(aServer.attributes['tsmesh.route'], 'mesh');
  assert.equal(aServer.attributes['tsmesh.cluster'], 'mesh');
  assert.equal(aServer.attributes['tsmesh.listener'], 'a');
  assert.equal(aServer.attributes['http.request.method'], 'POST');
  assert.equal(aServer.attributes['url.path'], '/query');
  assert.equal(aServer.attributes['url.query'], 'x=1');
  assert.equal(aServer.attributes['http.response.status_code'], 200);
  assert.equal(aServer.attributes['tsmesh.attempts'], 1);
  assert.equal(aServer.attributes['tsmesh.reason'], undefined);
  assert.equal(aServer.traceState, 'vendor=1');
  assert.equal(bServer.name, 'POST query');
  assert.equal(bServer.traceState, 'vendor=1');
  assert.equal(bServer.attributes['tsmesh.attempts'], 2);
  assert.equal(bAttempts[0]!.attributes['tsmesh.route'], 'query');
  assert.equal(bAttempts[0]!.attributes['tsmesh.cluster'], 'app');
  assert.equal(bAttempts[0]!.attributes['server.port'], upstream.port);
  assert.equal(aAttempts[0]!.attributes['server.port'], proxyB.port('b'));

  // What the upstream received: one request per B attempt, each naming its own attempt span,
  // with the caller's tracestate and baggage; the caller's own span id never reaches it.
  const atUpstream = seen.filter((h) => h.url === '/query?x=1');
  assert.equal(atUpstream.length, 2);
  for (const [i, h] of atUpstream.entries()) {
    assert.deepEqual(h, { url: '/query?x=1', traceparent: `00-${CALLER_TRACE}-${bAttempts[i]!.spanId}-01`, tracestate: 'vendor=1', baggage: 'tenant=acme' });
  }

  // Every span reaches the caller's span through its parents: one trace.
  const ids = new Map(spans.map((s) => [s.spanId, s]));
  for (const s of spans) {
    let p: ReceivedSpan | undefined = s;
    for (let hops = 0; p && p.parentSpanId !== CALLER_SPAN && hops < 10; hops++) p = ids.get(p.parentSpanId!);
    assert.equal(p?.parentSpanId, CALLER_SPAN, `${svc(s)} ${s.name} is not linked to the caller`);
  }
});

test('a connect failure retried: two attempt spans with the reason, and the reason on the server span', async () => {
  const r = await httpGet(proxyA.port('a'), '/dead');
  assert.equal(r.status, 503);
  assert.equal(r.headers['x-tsmesh-reason'], 'upstream_connect_failure');
  const [server] = await receiver.waitForSpans(1, (s) => svc(s) === 'proxy-a' && s.kind === 'server' && s.attributes['tsmesh.route'] === 'dead');
  assert.ok(server);
  assert.equal(server.parentSpanId, undefined, 'no traceparent came in: a new trace, rooted here');
  assert.equal(server.attributes['tsmesh.reason'], 'upstream_connect_failure');
  assert.equal(server.attributes['error.type'], 'upstream_connect_failure');
  assert.equal(server.attributes['http.response.status_code'], 503);
  assert.equal(server.status.code, 'error');
  assert.equal(server.attributes['tsmesh.attempts'], 2);
  const attempts = (await receiver.waitForSpans(2, (s) => s.parentSpanId === server.spanId)).sort(
    (x, y) => Number(x.attributes['tsmesh.attempt']) - Number(y.attributes['tsmesh.attempt']),
  );
  assert.deepEqual(
    attempts.map((s) => [s.kind, s.attributes['tsmesh.attempt'], s.attributes['tsmesh.reason'], s.attributes['http.response.status_code'], s.status.code]),
    [
      ['client', 1, 'upstream_connect_failure', undefined, 'error'],
      ['client', 2, 'upstream_connect_failure', undefined, 'error'],
    ],
  );
});

test('rejected requests: rate_limited on A (no attempt span), no_route on B under the attempt of A that reached it', async () => {
  const first = await httpGet(proxyA.port('a'), '/query/limited');
  assert.equal(first.status, 200);
  const limited = await httpGet(proxyA.port('a'), '/query/limited', { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['x-tsmesh-reason'], 'rate_limited');
  const [rejected] = await receiver.waitForSpans(1, (s) => s.traceId === CALLER_TRACE && s.attributes['tsmesh.reason'] === 'rate_limited');
  assert.ok(rejected);
  assert.equal(svc(rejected), 'proxy-a');
  assert.equal(rejected.parentSpanId, CALLER_SPAN);
  assert.equal(rejected.attributes['tsmesh.route'], 'limited');
  assert.equal(rejected.attributes['http.response.status_code'], 429);
  assert.equal(rejected.status.code, 'unset', 'a 4xx is the client\'s doing: not an error of the server span');
  assert.equal(rejected.attributes['tsmesh.attempts'], undefined);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(receiver.children(rejected).length, 0, 'rejected before any attempt: no attempt span');

  const missing = await httpGet(proxyA.port('a'), '/nothing/here');
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['x-tsmesh-reason'], 'no_route', "B's rejection, relayed by A");
  const [bServer] = await receiver.waitForSpans(1, (s) => svc(s) === 'proxy-b' && s.attributes['tsmesh.reason'] === 'no_route');
  assert.ok(bServer);
  assert.equal(bServer.name, 'GET', 'not routed: named after the method only');
  assert.equal(bServer.attributes['tsmesh.route'], undefined);
  assert.equal(bServer.attributes['http.response.status_code'], 404);
  const spans = await receiver.waitForSpans(3, (s) => s.traceId === bServer.traceId);
  const aAttempt = spans.find((s) => s.spanId === bServer.parentSpanId)!;
  assert.equal(svc(aAttempt), 'proxy-a');
  assert.equal(aAttempt.kind, 'client');
  assert.equal(aAttempt.attributes['http.response.status_code'], 404);
  assert.equal(aAttempt.status.code, 'error', 'an attempt answered 4xx is an error of the client span');
  const aServer = spans.find((s) => s.spanId === aAttempt.parentSpanId)!;
  assert.equal(aServer.attributes['tsmesh.reason'], undefined, 'A relayed an upstream answer: no reason of its own');
  assert.equal(aServer.attributes['http.response.status_code'], 404);
});

test("an unsampled caller's trace headers pass through both proxies unchanged, and no span is made", async () => {
  const unsampledTrace = '0af7651916cd43dd8448eb211c80319c';
  const traceparent = `00-${unsampledTrace}-b7ad6b7169203331-00`;
  const before = seen.length;
  const r = await httpGet(proxyA.port('a'), '/query/unsampled', { headers: { traceparent, tracestate: 'vendor=2', baggage: 'k=v' } });
  assert.equal(r.status, 200);
  assert.deepEqual(seen.slice(before), [{ url: '/query/unsampled', traceparent, tracestate: 'vendor=2', baggage: 'k=v' }]);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(receiver.spans.filter((s) => s.traceId === unsampledTrace).length, 0);
});

test("the access log carries each request's trace id: the span's, or the unsampled caller's", async () => {
  // Everything A served so far, written when A closes (pino writes asynchronously).
  await proxyA.close();
  const lines = readFileSync(join(logDir, 'a.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const byPath = (p: string) => lines.filter((l) => l.path === p);
  assert.equal(byPath('/query?x=1')[0]!.trace_id, CALLER_TRACE);
  assert.equal(byPath('/query/unsampled')[0]!.trace_id, '0af7651916cd43dd8448eb211c80319c');
  const dead = byPath('/dead')[0]!;
  const deadSpan = receiver.spans.find((s) => svc(s) === 'proxy-a' && s.kind === 'server' && s.attributes['tsmesh.route'] === 'dead')!;
  assert.equal(dead.trace_id, deadSpan.traceId, 'a new trace: the id of the span the proxy made');
  assert.equal(dead.reason, 'upstream_connect_failure');
  assert.equal(dead.attempts, 2);
  const [, limited] = byPath('/query/limited');
  assert.equal(limited!.reason, 'rate_limited');
  assert.equal(limited!.trace_id, CALLER_TRACE);
});

test('a changed tracing config gets a new tracer; tracing switched off leaves the trace headers untouched', async () => {
  const applied = await proxyB.apply(testConfig(docB(tracing('proxy-b2'))), { version: '2', source: 'file' });
  assert.ok(applied.ok);
  const r = await httpGet(proxyB.port('b'), '/query/after-change');
  assert.equal(r.status, 200);
  const [span] = await receiver.waitForSpans(1, (s) => svc(s) === 'proxy-b2' && s.kind === 'server');
  assert.equal(span!.attributes['url.path'], '/query/after-change');

  const off = await proxyB.apply(testConfig(docB({ enabled: false })), { version: '3', source: 'file' });
  assert.ok(off.ok);
  const traceparent = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
  const before = seen.length;
  const spansBefore = receiver.spans.length;
  const r2 = await httpGet(proxyB.port('b'), '/query/off', { headers: { traceparent, tracestate: 'vendor=3', baggage: 'a=b' } });
  assert.equal(r2.status, 200);
  assert.deepEqual(seen.slice(before), [{ url: '/query/off', traceparent, tracestate: 'vendor=3', baggage: 'a=b' }]);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(receiver.spans.slice(spansBefore).filter((s) => s.attributes['url.path'] === '/query/off').length, 0);
});
