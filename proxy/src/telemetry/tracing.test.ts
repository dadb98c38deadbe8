import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { context, propagation, trace } from '@opentelemetry/api';
import { tracing as tracingSchema, type TracingConfig } from '../config/schema.js';
import { createTracer, traceIdOf, PROPAGATION_HEADERS, type Tracer, type TracedRequest } from './tracing.js';
import { ratioBucket, ratioUpperBound, splitHostPort, traceparentFlags } from './tracing-otel.js';
import { tracing as otel } from '@opentelemetry/sdk-node';
import { startOtlpReceiver, type OtlpReceiver } from '../../../test/support/otlp-receiver.js';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await startOtlpReceiver();
});
after(() => receiver.close());
beforeEach(() => receiver.clear());

function config(extra: Partial<Record<keyof TracingConfig, unknown>> = {}): TracingConfig {
  return tracingSchema.parse({ enabled: true, endpoint: receiver.tracesUrl, exportInterval: '50ms', ...extra });
}

function request(method: string, target: string, headers: Record<string, string> = {}): TracedRequest {
  return { method, target, header: (name) => headers[name] };
}

/** The flat [name, value, ...] list as an object. */
function headerMap(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

async function withTracer<T>(cfg: TracingConfig, fn: (t: Tracer) => Promise<T> | T, resourceAttributes?: Record<string, string>): Promise<T> {
  const t = await createTracer(cfg, { resourceAttributes });
  assert.ok(t);
  try {
    return await fn(t);
  } finally {
    await t.shutdown();
  }
}

const PARENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN = 'b7ad6b7169203331';

function globalsUntouched(): void {
  // Nothing registered process-wide: no tracer provider, no context manager, no propagator.
  assert.equal(trace.getTracerProvider().constructor.name, 'ProxyTracerProvider');
  assert.equal((trace.getTracerProvider() as unknown as { getDelegate(): object }).getDelegate().constructor.name, 'NoopTracerProvider');
  assert.equal((context as unknown as { _getContextManager(): object })._getContextManager().constructor.name, 'NoopContextManager');
  assert.deepEqual(propagation.fields(), []);
}

test('tracing off: no tracer, nothing loaded or registered', async () => {
  const before = process.getActiveResourcesInfo().length;
  const t = await createTracer(tracingSchema.parse({}));
  assert.equal(t, undefined);
  assert.equal(process.getActiveResourcesInfo().length, before);
  globalsUntouched();
});

test('tracing off loads no OpenTelemetry SDK module; on loads it', () => {
  // The SDK packages are CommonJS: whatever was loaded shows in require.cache.
  const tracingJs = new URL('./tracing.js', import.meta.url).href;
  const schemaJs = new URL('../config/schema.js', import.meta.url).href;
  const script = `
    import { createRequire } from 'node:module';
    const { createTracer } = await import(${JSON.stringify(tracingJs)});
    const { tracing } = await import(${JSON.stringify(schemaJs)});
    const sdk = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => /@opentelemetry[\\/](sdk-trace|exporter-|resources)/.test(k)).length;
    const off = await createTracer(tracing.parse({}));
    const afterOff = sdk();
    const on = await createTracer(tracing.parse({ enabled: true, endpoint: 'http://127.0.0.1:4318/v1/traces' }));
    console.log(JSON.stringify({ off: off === undefined, afterOff, afterOn: sdk() }));
    await on.shutdown(10);
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { off: boolean; afterOff: number; afterOn: number };
  assert.equal(out.off, true);
  assert.equal(out.afterOff, 0, 'no SDK module loaded while tracing is off');
  assert.ok(out.afterOn > 0, 'the SDK loads when tracing is on');
});

test('one request, two attempts: server span with its attempts as client spans, linked to the caller', async () => {
  const incoming = request('POST', '/query?x=1', {
    host: 'api.example.com:8080',
    'user-agent': 'k6/0.50',
    traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`,
    tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    baggage: 'userId=alice,tier=gold',
  });
  const sent = await withTracer(
    config(),
    async (t) => {
      globalsUntouched();
      const span = t.startRequest(incoming, { listener: 'edge', clientAddress: '10.0.0.7', clientPort: 51000, serverPort: 8080 });
      assert.ok(span);
      assert.equal(span.traceId, PARENT_TRACE);
      assert.equal(span.sampled, true);
      span.setRoute('query', 'gateway');
      const a1 = span.startAttempt(1, '127.0.0.1:9001');
      a1.end(503);
      const a2 = span.startAttempt(2, '127.0.0.1:9002');
      a2.end(200);
      span.end(200, 'none');
      await t.forceFlush();
      return { a1: headerMap(a1.headers), a2: headerMap(a2.headers), spanId: span.spanId };
    },
    { 'service.instance.id': 'edge-1' },
  );

  const spans = await receiver.waitForSpans(3);
  assert.equal(spans.length, 3);
  const [server, ...attempts] = receiver.trace(PARENT_TRACE);
  assert.ok(server);
  assert.equal(server.kind, 'server');
  assert.equal(server.spanId, sent.spanId);
  assert.equal(server.parentSpanId, PARENT_SPAN, 'server span is the child of the caller span');
  assert.equal(server.name, 'POST query');
  assert.equal(server.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  assert.equal(server.flags & 0xff, 1);
  assert.deepEqual(server.resource['service.name'], 'tsmesh-proxy');
  assert.deepEqual(server.resource['service.instance.id'], 'edge-1');
  assert.equal(server.resource['telemetry.sdk.language'], 'nodejs');
  assert.equal(server.scope.name, 'tsmesh-proxy');
  assert.deepEqual(server.attributes, {
    'http.request.method': 'POST',
    'url.path': '/query',
    'url.query': 'x=1',
    'url.scheme': 'http',
    'server.address': 'api.example.com',
    'server.port': 8080,
    'client.address': '10.0.0.7',
    'client.port': 51000,
    'network.protocol.version': '1.1',
    'tsmesh.listener': 'edge',
    'user_agent.original': 'k6/0.50',
    'tsmesh.route': 'query',
    'tsmesh.cluster': 'gateway',
    'http.response.status_code': 200,
    'tsmesh.attempts': 2,
  });
  assert.equal(server.status.code, 'unset');

  assert.equal(attempts.length, 2);
  const [first, second] = receiver.children(server);
  assert.ok(first && second);
  for (const a of [first, second]) {
    assert.equal(a.kind, 'client');
    assert.equal(a.name, 'POST');
    assert.equal(a.traceId, PARENT_TRACE);
    assert.equal(a.parentSpanId, server.spanId);
  }
  assert.deepEqual(first.attributes, {
    'http.request.method': 'POST',
    'server.address': '127.0.0.1',
    'server.port': 9001,
    'network.peer.address': '127.0.0.1',
    'network.peer.port': 9001,
    'url.full': 'http://127.0.0.1:9001/query?x=1',
    'tsmesh.attempt': 1,
    'tsmesh.route': 'query',
    'tsmesh.cluster': 'gateway',
    'http.response.status_code': 503,
    'error.type': '503',
  });
  assert.equal(first.status.code, 'error');
  assert.equal(second.attributes['tsmesh.attempt'], 2);
  assert.equal(second.attributes['http.request.resend_count'], 1);
  assert.equal(second.attributes['server.port'], 9002);
  assert.equal(second.status.code, 'unset');
  for (const s of [server, first, second]) assert.ok(s.endTimeUnixNano >= s.startTimeUnixNano && s.startTimeUnixNano > 0n);

  // Each attempt carries its own span as the upstream's parent, the caller's tracestate and baggage.
  assert.deepEqual(sent.a1, { traceparent: `00-${PARENT_TRACE}-${first.spanId}-01`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', baggage: 'userId=alice,tier=gold' });
  assert.deepEqual(sent.a2, { traceparent: `00-${PARENT_TRACE}-${second.spanId}-01`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', baggage: 'userId=alice,tier=gold' });
  for (const name of Object.keys(sent.a1)) assert.ok(PROPAGATION_HEADERS.includes(name));
});

test('a rejected request: reason on the server span, error status for 5xx, no attempt', async () => {
  await withTracer(config(), async (t) => {
    const span = t.startRequest(request('GET', '/api'));
    assert.ok(span);
    span.setRoute('api', 'gateway');
    span.end(503, 'overloaded');
    const noRoute = t.startRequest(request('GET', '/nowhere'));
    assert.ok(noRoute);
    noRoute.end(404, 'no_route');
    await t.forceFlush();
  });
  const spans = await receiver.waitForSpans(2);
  const overloaded = spans.find((s) => s.name === 'GET api');
  assert.ok(overloaded);
  assert.equal(overloaded.parentSpanId, undefined, 'no caller: a root span');
  assert.equal(overloaded.attributes['tsmesh.reason'], 'overloaded');
  assert.equal(overloaded.attributes['error.type'], 'overloaded');
  assert.equal(overloaded.attributes['http.response.status_code'], 503);
  assert.equal(overloaded.attributes['tsmesh.attempts'], undefined);
  assert.deepEqual(overloaded.status, { code: 'error', message: 'overloaded' });
  const unrouted = spans.find((s) => s.name === 'GET');
  assert.ok(unrouted);
  assert.equal(unrouted.attributes['tsmesh.reason'], 'no_route');
  assert.equal(unrouted.attributes['tsmesh.route'], undefined);
  assert.equal(unrouted.status.code, 'unset', 'a 4xx is not an error of the server span');
});

test('an attempt without a response: error with its reason', async () => {
  await withTracer(config(), async (t) => {
    const span = t.startRequest(request('GET', '/'))!;
    span.setRoute('root', 'gateway');
    span.startAttempt(1, '127.0.0.1:1').end(undefined, 'upstream_connect_failure');
    span.end(503, 'upstream_connect_failure');
    await t.forceFlush();
  });
  const spans = await receiver.waitForSpans(2);
  const attempt = spans.find((s) => s.kind === 'client')!;
  assert.equal(attempt.attributes['tsmesh.reason'], 'upstream_connect_failure');
  assert.equal(attempt.attributes['error.type'], 'upstream_connect_failure');
  assert.equal(attempt.attributes['http.response.status_code'], undefined);
  assert.equal(attempt.status.code, 'error');
});

test('a caller that did not sample: no span, its headers pass through', async () => {
  await withTracer(config(), async (t) => {
    const span = t.startRequest(request('GET', '/', { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-00`, baggage: 'a=1' }));
    assert.equal(span, undefined);
    await t.forceFlush();
  });
  assert.equal(receiver.spans.length, 0);
});

test('a sampled caller is followed even at ratio 0', async () => {
  await withTracer(config({ samplingRatio: 0 }), async (t) => {
    const span = t.startRequest(request('GET', '/', { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` }));
    assert.ok(span?.sampled);
    span.startAttempt(1, '127.0.0.1:9001').end(200);
    span.end(200);
    await t.forceFlush();
  });
  const spans = await receiver.waitForSpans(2);
  assert.ok(spans.every((s) => s.traceId === PARENT_TRACE));
});

test('ratio 0, no caller: nothing recorded, upstreams learn the decision', async () => {
  await withTracer(config({ samplingRatio: 0 }), async (t) => {
    const span = t.startRequest(request('GET', '/', { baggage: 'k=v', tracestate: 'orphan=1' }));
    assert.ok(span);
    assert.equal(span.sampled, false);
    span.setRoute('r', 'c');
    const a1 = span.startAttempt(1, '127.0.0.1:9001');
    const a2 = span.startAttempt(2, '127.0.0.1:9002');
    a1.end(503);
    a2.end(200);
    span.end(200);
    const h = headerMap(a1.headers);
    assert.deepEqual(h, { traceparent: `00-${span.traceId}-${span.spanId}-00`, baggage: 'k=v' }, 'a tracestate without its traceparent is dropped');
    assert.deepEqual(a2.headers, a1.headers);
    assert.match(span.traceId, /^[0-9a-f]{32}$/);
    await t.forceFlush();
  });
  assert.equal(receiver.spans.length, 0);
});

test('ratio 0.5 samples by trace id, about half of new traces', async () => {
  let sampled = 0;
  await withTracer(config({ samplingRatio: 0.5 }), async (t) => {
    for (let i = 0; i < 400; i++) {
      const span = t.startRequest(request('GET', '/'))!;
      if (span.sampled) sampled++;
      span.end(200);
    }
    await t.forceFlush();
  });
  assert.ok(sampled > 120 && sampled < 280, `sampled ${sampled} of 400`);
  await receiver.waitForSpans(sampled);
  assert.equal(receiver.spans.length, sampled);
});

test('an invalid traceparent starts a new trace', async () => {
  await withTracer(config(), async (t) => {
    for (const bad of ['00-00000000000000000000000000000000-b7ad6b7169203331-01', 'garbage', `00-${PARENT_TRACE}-0000000000000000-01`, `00-${PARENT_TRACE}-${PARENT_SPAN}-01-extra`]) {
      const span = t.startRequest(request('GET', '/', { traceparent: bad }))!;
      assert.ok(span.sampled);
      assert.notEqual(span.traceId, PARENT_TRACE);
      span.end(200);
    }
    await t.forceFlush();
  });
  const spans = await receiver.waitForSpans(4);
  assert.ok(spans.every((s) => s.parentSpanId === undefined));
});

test('unknown methods are _OTHER, the original kept', async () => {
  await withTracer(config(), async (t) => {
    t.startRequest(request('PROPFIND', '/dav'))!.end(405);
    await t.forceFlush();
  });
  const [s] = await receiver.waitForSpans(1);
  assert.equal(s!.name, 'HTTP');
  assert.equal(s!.attributes['http.request.method'], '_OTHER');
  assert.equal(s!.attributes['http.request.method_original'], 'PROPFIND');
});

test('spans are exported on their own after exportInterval', async () => {
  await withTracer(config({ exportInterval: '20ms' }), async (t) => {
    t.startRequest(request('GET', '/'))!.end(200);
    await receiver.waitForSpans(1, undefined, 5000);
  });
});

test('an unreachable collector loses spans, never requests, and cannot hold up shutdown', async () => {
  const t = await createTracer(tracingSchema.parse({ enabled: true, endpoint: 'http://127.0.0.1:9/v1/traces', exportInterval: '10ms', exportTimeout: '300ms' }));
  assert.ok(t);
  for (let i = 0; i < 50; i++) {
    const span = t.startRequest(request('GET', '/'))!;
    span.startAttempt(1, '127.0.0.1:9001').end(200);
    span.end(200);
  }
  await t.forceFlush(100);
  await t.shutdown(100);
});

test('traceIdOf and splitHostPort', () => {
  assert.equal(traceIdOf(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`), PARENT_TRACE);
  assert.equal(traceIdOf('00-00000000000000000000000000000000-b7ad6b7169203331-01'), undefined);
  assert.equal(traceIdOf('nope'), undefined);
  assert.equal(traceIdOf(undefined), undefined);
  assert.deepEqual(splitHostPort('a.example:80'), ['a.example', 80]);
  assert.deepEqual(splitHostPort('a.example'), ['a.example', undefined]);
  assert.deepEqual(splitHostPort('[::1]:9001'), ['::1', 9001]);
  assert.deepEqual(splitHostPort('::1'), ['::1', undefined]);
});

test('traceparentFlags: the W3C rules', () => {
  const ok = `00-${PARENT_TRACE}-${PARENT_SPAN}-01`;
  assert.equal(traceparentFlags(ok), 1);
  assert.equal(traceparentFlags(`00-${PARENT_TRACE}-${PARENT_SPAN}-00`), 0);
  assert.equal(traceparentFlags(`00-${PARENT_TRACE}-${PARENT_SPAN}-03`), 3);
  assert.equal(traceparentFlags(`01-${PARENT_TRACE}-${PARENT_SPAN}-01-future-stuff`), 1, 'later versions may add fields');
  assert.equal(traceparentFlags(`01-${PARENT_TRACE}-${PARENT_SPAN}-01`), 1);
  for (const bad of [
    `00-${PARENT_TRACE}-${PARENT_SPAN}-01-extra`, // version 00 has exactly four fields
    `01-${PARENT_TRACE}-${PARENT_SPAN}-01x`,
    `ff-${PARENT_TRACE}-${PARENT_SPAN}-01`,
    `00-${PARENT_TRACE.toUpperCase()}-${PARENT_SPAN}-01`,
    `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`,
    `00-${PARENT_TRACE}-${'0'.repeat(16)}-01`,
    `00-${PARENT_TRACE}-${PARENT_SPAN}-0g`,
    `00_${PARENT_TRACE}-${PARENT_SPAN}-01`,
    ok.slice(0, 54),
    '',
  ]) {
    assert.equal(traceparentFlags(bad), -1, bad);
  }
});

test('the inlined ratio decision is the SDK sampler\'s', () => {
  const ids = new otel.RandomIdGenerator();
  for (const ratio of [0, 0.01, 0.25, 0.5, 0.999, 1]) {
    const sdk = new otel.TraceIdRatioBasedSampler(ratio);
    const bound = ratioUpperBound(ratio);
    for (let i = 0; i < 2000; i++) {
      const id = ids.generateTraceId();
      assert.equal(ratioBucket(id) < bound, sdk.shouldSample(context.active(), id).decision === otel.SamplingDecision.RECORD_AND_SAMPLED, `${ratio} ${id}`);
    }
  }
});
