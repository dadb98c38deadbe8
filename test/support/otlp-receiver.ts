// A real OTLP trace receiver for tests, like an OpenTelemetry Collector's otlp receiver:
// OTLP/HTTP on a free loopback port (POST /v1/traces, protobuf or JSON bodies, optionally gzip)
// and, if asked, OTLP/gRPC (TraceService/Export). Protobuf is decoded with code generated from
// the official OTLP .proto files (test/support/otlp, `sh scripts/gen-otlp.sh`); JSON follows the
// OTLP/JSON rules (hex trace and span ids, lowerCamelCase names, int64 as strings). Every span
// is normalised into a `ReceivedSpan` that tests can wait for and query.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Server, ServerCredentials, status as GrpcStatus, type ServiceDefinition, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { ExportTraceServiceRequest, ExportTraceServiceResponse } from './otlp/gen/opentelemetry/proto/collector/trace/v1/trace_service.js';
import type { AnyValue, KeyValue } from './otlp/gen/opentelemetry/proto/common/v1/common.js';
import { Span_SpanKind, Status_StatusCode, type Span } from './otlp/gen/opentelemetry/proto/trace/v1/trace.js';

export type AttributeValue = string | number | boolean | Uint8Array | AttributeValue[] | { [key: string]: AttributeValue } | null;
export type Attributes = Record<string, AttributeValue>;

export type SpanKindName = 'unspecified' | 'internal' | 'server' | 'client' | 'producer' | 'consumer';
export type Encoding = 'protobuf' | 'json' | 'grpc';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly traceState: string;
  /** W3C trace flags in the low byte; bits 8/9 say whether the parent is remote. */
  readonly flags: number;
  readonly name: string;
  readonly kind: SpanKindName;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  /** int64 values become numbers (exact up to 2^53). */
  readonly attributes: Attributes;
  readonly events: ReadonlyArray<{ readonly name: string; readonly timeUnixNano: bigint; readonly attributes: Attributes }>;
  readonly status: { readonly code: 'unset' | 'ok' | 'error'; readonly message: string };
  readonly resource: Attributes;
  readonly scope: { readonly name: string; readonly version: string };
  /** How it arrived. */
  readonly encoding: Encoding;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The OTLP/HTTP traces endpoint: url + /v1/traces. */
  readonly tracesUrl: string;
  /** http://127.0.0.1:PORT of the gRPC receiver, when started with { grpc: true }. */
  readonly grpcUrl: string | undefined;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly ReceivedSpan[];
  /** Export requests received, by encoding. */
  readonly exports: Readonly<Record<Encoding, number>>;
  /** Requests refused (bad body, wrong content type...), with the reason sent back. */
  readonly errors: readonly string[];
  /** Headers (HTTP) or metadata (gRPC) of each accepted export, names in lower case. */
  readonly exportHeaders: ReadonlyArray<Readonly<Record<string, string>>>;
  /** Resolves with the spans matching `match` once there are at least `count` of them. */
  waitForSpans(count: number, match?: (s: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** The spans of one trace, parents before children (then by start time). */
  trace(traceId: string): ReceivedSpan[];
  /** Children of a span. */
  children(span: ReceivedSpan): ReceivedSpan[];
  clear(): void;
  close(): Promise<void>;
}

export async function startOtlpReceiver(options: { grpc?: boolean } = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const exports: Record<Encoding, number> = { protobuf: 0, json: 0, grpc: 0 };
  const errors: string[] = [];
  const exportHeaders: Record<string, string>[] = [];
  const waiters = new Set<() => void>();

  const accept = (req: ExportTraceServiceRequest, encoding: Encoding, headers: Record<string, string>) => {
    exports[encoding]++;
    exportHeaders.push(headers);
    spans.push(...normalise(req, encoding));
    for (const w of [...waiters]) w();
  };

  const http = createServer((req, res) => {
    handleHttp(req, res, accept, errors).catch((err: unknown) => {
      errors.push(String(err));
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;

  let grpc: Server | undefined;
  let grpcUrl: string | undefined;
  if (options.grpc) {
    grpc = new Server();
    grpc.addService(TRACE_SERVICE, {
      export: (call: ServerUnaryCall<ExportTraceServiceRequest, ExportTraceServiceResponse>, callback: sendUnaryData<ExportTraceServiceResponse>) => {
        try {
          const md: Record<string, string> = {};
          for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = String(v);
          accept(call.request, 'grpc', md);
          callback(null, {});
        } catch (err) {
          errors.push(`grpc: ${(err as Error).message}`);
          callback({ code: GrpcStatus.INVALID_ARGUMENT, details: (err as Error).message });
        }
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      grpc!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    grpcUrl = `http://127.0.0.1:${port}`;
  }

  return {
    url,
    tracesUrl: `${url}/v1/traces`,
    grpcUrl,
    spans,
    exports,
    errors,
    exportHeaders,
    waitForSpans(count, match = () => true, timeoutMs = 10_000) {
      const found = () => spans.filter(match);
      if (found().length >= count) return Promise.resolve(found());
      return new Promise((resolve, reject) => {
        const done = () => {
          const f = found();
          if (f.length < count) return;
          clearTimeout(timer);
          waiters.delete(done);
          resolve(f);
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          reject(new Error(`timed out after ${timeoutMs}ms waiting for ${count} spans; have ${found().length} matching of ${spans.length}: ${spans.map((s) => `${s.kind} ${s.name}`).join(', ')}`));
        }, timeoutMs);
        waiters.add(done);
      });
    },
    trace(traceId) {
      const of = spans.filter((s) => s.traceId === traceId);
      const ids = new Set(of.map((s) => s.spanId));
      const depth = (s: ReceivedSpan): number => {
        let d = 0;
        for (let p = s.parentSpanId; p !== undefined && ids.has(p) && d < of.length; d++) p = of.find((x) => x.spanId === p)?.parentSpanId;
        return d;
      };
      return [...of].sort((a, b) => depth(a) - depth(b) || Number(a.startTimeUnixNano - b.startTimeUnixNano));
    },
    children(span) {
      return spans.filter((s) => s.traceId === span.traceId && s.parentSpanId === span.spanId).sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
    },
    clear() {
      spans.length = 0;
      errors.length = 0;
      exportHeaders.length = 0;
      exports.protobuf = exports.json = exports.grpc = 0;
    },
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      if (grpc) await new Promise<void>((resolve) => grpc!.tryShutdown(() => resolve()));
    },
  };
}

const TRACE_SERVICE: ServiceDefinition = {
  export: {
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: ExportTraceServiceRequest) => Buffer.from(ExportTraceServiceRequest.encode(m).finish()),
    requestDeserialize: (b: Buffer) => ExportTraceServiceRequest.decode(b),
    responseSerialize: (m: ExportTraceServiceResponse) => Buffer.from(ExportTraceServiceResponse.encode(m).finish()),
    responseDeserialize: (b: Buffer) => ExportTraceServiceResponse.decode(b),
  },
};

async function handleHttp(req: IncomingMessage, res: ServerResponse, accept: (r: ExportTraceServiceRequest, e: Encoding, h: Record<string, string>) => void, errors: string[]): Promise<void> {
  const refuse = (status: number, message: string) => {
    errors.push(`${status} ${message}`);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 3, message }));
  };
  if (req.url !== '/v1/traces') return refuse(404, `no such path ${req.url}`);
  if (req.method !== 'POST') return refuse(405, `method ${req.method} not allowed`);
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  let body = Buffer.concat(chunks);
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding === 'gzip') body = gunzipSync(body);
  else if (encoding !== 'identity') return refuse(415, `unsupported content-encoding ${encoding}`);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-protobuf') {
    let decoded: ExportTraceServiceRequest;
    try {
      decoded = ExportTraceServiceRequest.decode(body);
    } catch (err) {
      return refuse(400, `bad protobuf: ${(err as Error).message}`);
    }
    accept(decoded, 'protobuf', flatHeaders(req));
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(ExportTraceServiceResponse.encode({}).finish()));
    return;
  }
  if (type === 'application/json') {
    let decoded: ExportTraceServiceRequest;
    try {
      decoded = requestFromJson(JSON.parse(body.toString('utf8')));
    } catch (err) {
      return refuse(400, `bad JSON: ${(err as Error).message}`);
    }
    accept(decoded, 'json', flatHeaders(req));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    return;
  }
  refuse(415, `unsupported content-type ${type || '(none)'}`);
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

// --- normalisation -------------------------------------------------------------------------

const KINDS: Record<number, SpanKindName> = {
  [Span_SpanKind.SPAN_KIND_UNSPECIFIED]: 'unspecified',
  [Span_SpanKind.SPAN_KIND_INTERNAL]: 'internal',
  [Span_SpanKind.SPAN_KIND_SERVER]: 'server',
  [Span_SpanKind.SPAN_KIND_CLIENT]: 'client',
  [Span_SpanKind.SPAN_KIND_PRODUCER]: 'producer',
  [Span_SpanKind.SPAN_KIND_CONSUMER]: 'consumer',
};
const STATUS: Record<number, 'unset' | 'ok' | 'error'> = {
  [Status_StatusCode.STATUS_CODE_UNSET]: 'unset',
  [Status_StatusCode.STATUS_CODE_OK]: 'ok',
  [Status_StatusCode.STATUS_CODE_ERROR]: 'error',
};

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function normalise(req: ExportTraceServiceRequest, encoding: Encoding): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans) {
    const resource = attributes(rs.resource?.attributes ?? []);
    for (const ss of rs.scopeSpans) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' };
      for (const s of ss.spans) out.push(span(s, resource, scope, encoding));
    }
  }
  return out;
}

function span(s: Span, resource: Attributes, scope: { name: string; version: string }, encoding: Encoding): ReceivedSpan {
  if (s.traceId.length !== 16 || s.spanId.length !== 8) throw new Error(`span "${s.name}" has a trace id of ${s.traceId.length} bytes and a span id of ${s.spanId.length} bytes`);
  return {
    traceId: hex(s.traceId),
    spanId: hex(s.spanId),
    parentSpanId: s.parentSpanId.length === 0 ? undefined : hex(s.parentSpanId),
    traceState: s.traceState,
    flags: s.flags,
    name: s.name,
    kind: KINDS[s.kind] ?? 'unspecified',
    startTimeUnixNano: s.startTimeUnixNano,
    endTimeUnixNano: s.endTimeUnixNano,
    attributes: attributes(s.attributes),
    events: s.events.map((e) => ({ name: e.name, timeUnixNano: e.timeUnixNano, attributes: attributes(e.attributes) })),
    status: { code: STATUS[s.status?.code ?? 0] ?? 'unset', message: s.status?.message ?? '' },
    resource,
    scope,
    encoding,
  };
}

function attributes(kvs: readonly KeyValue[]): Attributes {
  const out: Attributes = {};
  for (const kv of kvs) out[kv.key] = value(kv.value);
  return out;
}

function value(v: AnyValue | undefined): AttributeValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue !== undefined) return v.arrayValue.values.map(value);
  if (v.kvlistValue !== undefined) return attributes(v.kvlistValue.values);
  return null;
}

// --- OTLP/JSON → the generated message types -------------------------------------------------
// Only what spans need. Field names are lowerCamelCase (snake_case accepted too, as the protobuf
// JSON mapping allows); trace and span ids are hex, not base64; enums are integers (names are
// accepted); 64-bit integers are decimal strings or numbers.

type Json = Record<string, unknown>;

function field(o: Json, camel: string): unknown {
  if (camel in o) return o[camel];
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return o[snake];
}

function obj(v: unknown, what: string): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be an object`);
  return v as Json;
}

function list(o: Json, name: string, what: string): Json[] {
  const v = field(o, name);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${what}.${name} must be an array`);
  return v.map((x, i) => obj(x, `${what}.${name}[${i}]`));
}

function str(o: Json, name: string, what: string): string {
  const v = field(o, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new Error(`${what}.${name} must be a string`);
  return v;
}

function int(o: Json, name: string, what: string): number {
  const v = field(o, name);
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new Error(`${what}.${name} must be an integer`);
  return n;
}

function int64(o: Json, name: string, what: string): bigint {
  const v = field(o, name);
  if (v === undefined || v === null) return 0n;
  if ((typeof v === 'string' && /^-?\d+$/.test(v)) || (typeof v === 'number' && Number.isInteger(v))) return BigInt(v);
  throw new Error(`${what}.${name} must be a 64-bit integer`);
}

function enumValue(o: Json, name: string, values: Record<string, number | string>, what: string): number {
  const v = field(o, name);
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && typeof values[v] === 'number') return values[v] as number;
  throw new Error(`${what}.${name}: unknown enum value ${JSON.stringify(v)}`);
}

function hexId(o: Json, name: string, bytes: number, what: string): Buffer {
  const v = str(o, name, what);
  if (v === '') return Buffer.alloc(0);
  if (!new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v)) throw new Error(`${what}.${name} must be ${bytes * 2} hex digits (got ${JSON.stringify(v)})`);
  return Buffer.from(v, 'hex');
}

function anyValueFromJson(v: unknown, what: string): AnyValue {
  const o = obj(v, what);
  if (field(o, 'stringValue') !== undefined) return { stringValue: str(o, 'stringValue', what) };
  const b = field(o, 'boolValue');
  if (b !== undefined) {
    if (typeof b !== 'boolean') throw new Error(`${what}.boolValue must be a boolean`);
    return { boolValue: b };
  }
  if (field(o, 'intValue') !== undefined) return { intValue: int64(o, 'intValue', what) };
  const d = field(o, 'doubleValue');
  if (d !== undefined) {
    const n = typeof d === 'string' ? Number(d) : d;
    if (typeof n !== 'number') throw new Error(`${what}.doubleValue must be a number`);
    return { doubleValue: n };
  }
  const bytes = field(o, 'bytesValue');
  if (bytes !== undefined) {
    if (typeof bytes !== 'string') throw new Error(`${what}.bytesValue must be base64`);
    return { bytesValue: Buffer.from(bytes, 'base64') };
  }
  const arr = field(o, 'arrayValue');
  if (arr !== undefined) return { arrayValue: { values: list(obj(arr, `${what}.arrayValue`), 'values', `${what}.arrayValue`).map((x, i) => anyValueFromJson(x, `${what}.arrayValue.values[${i}]`)) } };
  const kv = field(o, 'kvlistValue');
  if (kv !== undefined) return { kvlistValue: { values: keyValues(obj(kv, `${what}.kvlistValue`), 'values', `${what}.kvlistValue`) } };
  return {};
}

function keyValues(o: Json, name: string, what: string): KeyValue[] {
  return list(o, name, what).map((kv, i) => {
    const w = `${what}.${name}[${i}]`;
    const value = field(kv, 'value');
    return { key: str(kv, 'key', w), value: value === undefined || value === null ? undefined : anyValueFromJson(value, `${w}.value`), keyStrindex: 0 };
  });
}

export function requestFromJson(doc: unknown): ExportTraceServiceRequest {
  const root = obj(doc, 'request');
  return {
    resourceSpans: list(root, 'resourceSpans', 'request').map((rs, i) => {
      const w = `resourceSpans[${i}]`;
      const resource = field(rs, 'resource');
      return {
        resource: resource === undefined || resource === null ? undefined : { attributes: keyValues(obj(resource, `${w}.resource`), 'attributes', `${w}.resource`), droppedAttributesCount: 0, entityRefs: [] },
        schemaUrl: str(rs, 'schemaUrl', w),
        scopeSpans: list(rs, 'scopeSpans', w).map((ss, j) => {
          const ws = `${w}.scopeSpans[${j}]`;
          const scope = field(ss, 'scope');
          const sc = scope === undefined || scope === null ? undefined : obj(scope, `${ws}.scope`);
          return {
            scope: sc && { name: str(sc, 'name', `${ws}.scope`), version: str(sc, 'version', `${ws}.scope`), attributes: keyValues(sc, 'attributes', `${ws}.scope`), droppedAttributesCount: 0 },
            schemaUrl: str(ss, 'schemaUrl', ws),
            spans: list(ss, 'spans', ws).map((s, k) => spanFromJson(s, `${ws}.spans[${k}]`)),
          };
        }),
      };
    }),
  };
}

function spanFromJson(s: Json, w: string): Span {
  const status = field(s, 'status');
  const st = status === undefined || status === null ? undefined : obj(status, `${w}.status`);
  return {
    traceId: hexId(s, 'traceId', 16, w),
    spanId: hexId(s, 'spanId', 8, w),
    traceState: str(s, 'traceState', w),
    parentSpanId: hexId(s, 'parentSpanId', 8, w),
    flags: int(s, 'flags', w),
    name: str(s, 'name', w),
    kind: enumValue(s, 'kind', Span_SpanKind as unknown as Record<string, number>, w),
    startTimeUnixNano: int64(s, 'startTimeUnixNano', w),
    endTimeUnixNano: int64(s, 'endTimeUnixNano', w),
    attributes: keyValues(s, 'attributes', w),
    droppedAttributesCount: int(s, 'droppedAttributesCount', w),
    events: list(s, 'events', w).map((e, i) => ({
      timeUnixNano: int64(e, 'timeUnixNano', `${w}.events[${i}]`),
      name: str(e, 'name', `${w}.events[${i}]`),
      attributes: keyValues(e, 'attributes', `${w}.events[${i}]`),
      droppedAttributesCount: int(e, 'droppedAttributesCount', `${w}.events[${i}]`),
    })),
    droppedEventsCount: int(s, 'droppedEventsCount', w),
    links: list(s, 'links', w).map((l, i) => ({
      traceId: hexId(l, 'traceId', 16, `${w}.links[${i}]`),
      spanId: hexId(l, 'spanId', 8, `${w}.links[${i}]`),
      traceState: str(l, 'traceState', `${w}.links[${i}]`),
      attributes: keyValues(l, 'attributes', `${w}.links[${i}]`),
      droppedAttributesCount: int(l, 'droppedAttributesCount', `${w}.links[${i}]`),
      flags: int(l, 'flags', `${w}.links[${i}]`),
    })),
    droppedLinksCount: int(s, 'droppedLinksCount', w),
    status: st && { message: str(st, 'message', `${w}.status`), code: enumValue(st, 'code', Status_StatusCode as unknown as Record<string, number>, `${w}.status`) },
  };
}
