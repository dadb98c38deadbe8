import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { tracing as tracingSchema } from '../../proxy/src/config/schema.js';
import { createTracer } from '../../proxy/src/telemetry/tracing.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await startOtlpReceiver({ grpc: true });
});
after(() => receiver.close());
beforeEach(() => receiver.clear());

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

for (const protocol of ['http', 'http/protobuf', 'http/json', 'grpc'] as const) {
  test(`spans exported over ${protocol} arrive decoded, with links, attributes and resource`, async () => {
    const endpoint = protocol === 'grpc' ? receiver.grpcUrl! : receiver.tracesUrl;
    const tracer = await createTracer(tracingSchema.parse({ enabled: true, protocol, endpoint, serviceName: `edge-${protocol}`, headers: { 'x-api-key': 'k' } }), {
      resourceAttributes: { 'service.instance.id': 'node-7' },
    });
    assert.ok(tracer);
    const span = tracer.startRequest({ method: 'GET', target: '/health', header: (n) => (n === 'traceparent' ? `00-${CALLER_TRACE}-${CALLER_SPAN}-01` : undefined) })!;
    span.setRoute('health', 'gateway');
    span.startAttempt(1, '127.0.0.1:9001').end(undefined, 'upstream_reset');
    span.startAttempt(2, '127.0.0.1:9002').end(200);
    span.end(200);
    await tracer.shutdown(5000);

    const spans = await receiver.waitForSpans(3);
    const expected = protocol === 'grpc' ? 'grpc' : protocol === 'http/json' ? 'json' : 'protobuf';
    assert.equal(receiver.exports[expected], 1);
    assert.deepEqual(receiver.errors, []);
    assert.equal(receiver.exportHeaders[0]?.['x-api-key'], 'k', 'configured headers reach the collector');
    const [server, a1, a2] = receiver.trace(CALLER_TRACE);
    assert.ok(server && a1 && a2);
    assert.equal(spans.length, 3);
    for (const s of spans) {
      assert.equal(s.encoding, expected);
      assert.equal(s.resource['service.name'], `edge-${protocol}`);
      assert.equal(s.resource['service.instance.id'], 'node-7');
      assert.equal(s.scope.name, 'tsmesh-proxy');
      assert.equal(s.traceId, CALLER_TRACE);
    }
    assert.equal(server.kind, 'server');
    assert.equal(server.parentSpanId, CALLER_SPAN);
    assert.equal(server.name, 'GET health');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['tsmesh.attempts'], 2);
    assert.deepEqual(receiver.children(server).map((s) => s.attributes['tsmesh.attempt']), [1, 2]);
    assert.equal(a1.parentSpanId, server.spanId);
    assert.equal(a1.kind, 'client');
    assert.equal(a1.attributes['tsmesh.reason'], 'upstream_reset');
    assert.equal(a1.status.code, 'error');
    assert.equal(a2.attributes['http.response.status_code'], 200);
    assert.ok(server.endTimeUnixNano >= server.startTimeUnixNano);
  });
}

async function post(body: Buffer | string, headers: Record<string, string>, path = '/v1/traces', method = 'POST') {
  const res = await fetch(receiver.url + path, { method, headers, body: method === 'POST' ? body : undefined });
  return { status: res.status, text: await res.text() };
}

test('OTLP/JSON: hex ids, snake_case names, enum names, int64 strings, gzip', async () => {
  const doc = {
    resource_spans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hand-made' } }] },
        scopeSpans: [
          {
            scope: { name: 'manual', version: '1' },
            spans: [
              {
                traceId: CALLER_TRACE.toUpperCase(),
                spanId: CALLER_SPAN,
                name: 'op',
                kind: 'SPAN_KIND_SERVER',
                startTimeUnixNano: '1700000000000000001',
                endTimeUnixNano: 1700000000000000000 + 5,
                attributes: [
                  { key: 'n', value: { intValue: '42' } },
                  { key: 'd', value: { doubleValue: 1.5 } },
                  { key: 'b', value: { boolValue: true } },
                  { key: 'list', value: { arrayValue: { values: [{ stringValue: 'x' }, { intValue: 1 }] } } },
                  { key: 'map', value: { kvlistValue: { values: [{ key: 'k', value: { stringValue: 'v' } }] } } },
                  { key: 'raw', value: { bytesValue: Buffer.from('hi').toString('base64') } },
                ],
                status: { code: 2, message: 'boom' },
              },
            ],
          },
        ],
      },
    ],
  };
  const r = await post(gzipSync(JSON.stringify(doc)), { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'gzip' });
  assert.equal(r.status, 200);
  assert.equal(r.text, '{}');
  const [s] = await receiver.waitForSpans(1);
  assert.ok(s);
  assert.equal(s.traceId, CALLER_TRACE);
  assert.equal(s.parentSpanId, undefined);
  assert.equal(s.kind, 'server');
  assert.equal(s.startTimeUnixNano, 1700000000000000001n);
  assert.equal(s.resource['service.name'], 'hand-made');
  assert.deepEqual(s.scope, { name: 'manual', version: '1' });
  assert.deepEqual(s.attributes, { n: 42, d: 1.5, b: true, list: ['x', 1], map: { k: 'v' }, raw: Buffer.from('hi') });
  assert.deepEqual(s.status, { code: 'error', message: 'boom' });
  assert.equal(s.encoding, 'json');
});

test('bad requests are refused with a reason and nothing is recorded', async () => {
  const cases: Array<[Promise<{ status: number; text: string }>, number, RegExp]> = [
    [post('{', { 'content-type': 'application/json' }), 400, /bad JSON/],
    [post(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'zz', spanId: CALLER_SPAN }] }] }] }), { 'content-type': 'application/json' }), 400, /traceId must be 32 hex digits/],
    [post(JSON.stringify({ resourceSpans: {} }), { 'content-type': 'application/json' }), 400, /resourceSpans must be an array/],
    [post(Buffer.from([0x0a, 0xff, 0xff, 0xff]), { 'content-type': 'application/x-protobuf' }), 400, /bad protobuf/],
    [post('x', { 'content-type': 'text/plain' }), 415, /unsupported content-type text\/plain/],
    [post('x', { 'content-type': 'application/json', 'content-encoding': 'br' }), 415, /content-encoding br/],
    [post('x', { 'content-type': 'application/json' }, '/v1/metrics'), 404, /no such path/],
    [post('', {}, '/v1/traces', 'GET'), 405, /not allowed/],
  ];
  for (const [res, status, message] of cases) {
    const r = await res;
    assert.equal(r.status, status, r.text);
    assert.match(r.text, message);
  }
  assert.equal(receiver.spans.length, 0);
  assert.equal(receiver.errors.length, cases.length);
});

test('waitForSpans times out with what it has', async () => {
  await assert.rejects(receiver.waitForSpans(1, undefined, 50), /timed out after 50ms waiting for 1 spans; have 0/);
});
