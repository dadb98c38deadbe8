// The OpenTelemetry side of tracing.ts, loaded only when tracing is on. The SDK comes through
// @opentelemetry/sdk-node (its `tracing` = sdk-trace-base, `resources`, `core`), but assembled
// here from those parts rather than by `NodeSDK.start()`, because NodeSDK registers
// process-wide globals: a tracer provider, a propagator, an AsyncLocalStorage context manager
// and its instrumentations. Here each proxy owns a provider (its own resource and exporter),
// contexts are passed explicitly, the proxy makes its own spans, and nothing global is touched.
// Importing sdk-node registers nothing by itself; it does load more modules than sdk-trace-base
// alone (its log and metric SDKs), once, at startup, and only with tracing on.
//
// Sampling is parent-based: a caller's sampled flag is obeyed (sampled stays sampled, unsampled
// passes through without a span), new traces are sampled at `samplingRatio` by trace id, so
// every proxy of a mesh takes the same decision for the same trace.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Span, type SpanContext } from '@opentelemetry/api';
import { core, resources, tracing } from '@opentelemetry/sdk-node';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../config/schema.js';
import type { AttemptSpan, ConnectionInfo, RequestSpan, TracedRequest, Tracer, TracerOptions } from './tracing.js';

/** tsmesh's own span attributes. */
export const ATTR_TSMESH_REASON = 'tsmesh.reason';
export const ATTR_TSMESH_ATTEMPT = 'tsmesh.attempt';
export const ATTR_TSMESH_ATTEMPTS = 'tsmesh.attempts';
export const ATTR_TSMESH_ROUTE = 'tsmesh.route';
export const ATTR_TSMESH_CLUSTER = 'tsmesh.cluster';
export const ATTR_TSMESH_LISTENER = 'tsmesh.listener';

const SCOPE = 'tsmesh-proxy';
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);

export async function createOtelTracer(config: TracingConfig, options: TracerOptions): Promise<Tracer> {
  const exporter = options.exporter ?? (await buildExporter(config));
  const resource = resources.defaultResource().merge(resources.resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, ...options.resourceAttributes }));
  const ids = new PresetIdGenerator();
  const provider = new tracing.BasicTracerProvider({
    resource,
    idGenerator: ids,
    sampler: new tracing.ParentBasedSampler({ root: new tracing.TraceIdRatioBasedSampler(config.samplingRatio) }),
    spanProcessors: [
      // Spans wait in a bounded queue and leave in batches off the request path; when the
      // collector is slow or away the queue drops spans rather than holding memory or requests.
      new tracing.BatchSpanProcessor(exporter, { scheduledDelayMillis: config.exportInterval, maxQueueSize: 4096, maxExportBatchSize: 512, exportTimeoutMillis: config.exportTimeout }),
    ],
  });
  return new OtelTracer(provider, ids, config.samplingRatio);
}

async function buildExporter(config: TracingConfig): Promise<tracing.SpanExporter> {
  const url = config.endpoint;
  const headers = config.headers;
  const timeoutMillis = config.exportTimeout;
  switch (config.protocol) {
    case 'grpc': {
      const [{ OTLPTraceExporter }, { Metadata }] = await Promise.all([import('@opentelemetry/exporter-trace-otlp-grpc'), import('@grpc/grpc-js')]);
      const metadata = new Metadata();
      for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
      return new OTLPTraceExporter({ url, metadata, timeoutMillis });
    }
    case 'http/json': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ url, headers, timeoutMillis });
    }
    case 'http':
    case 'http/protobuf': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ url, headers, timeoutMillis });
    }
  }
}

class OtelTracer implements Tracer {
  readonly #provider: tracing.BasicTracerProvider;
  readonly tracer: ReturnType<tracing.BasicTracerProvider['getTracer']>;
  readonly #ids: PresetIdGenerator;
  readonly #upperBound: number;

  constructor(provider: tracing.BasicTracerProvider, ids: PresetIdGenerator, samplingRatio: number) {
    this.#provider = provider;
    this.tracer = provider.getTracer(SCOPE);
    this.#ids = ids;
    this.#upperBound = ratioUpperBound(samplingRatio);
  }

  startRequest(request: TracedRequest, connection?: ConnectionInfo): RequestSpan | undefined {
    const traceparent = request.header('traceparent');
    if (traceparent !== undefined) {
      const flags = traceparentFlags(traceparent);
      // An invalid traceparent starts a new trace (W3C trace context, "restart the trace").
      if (flags >= 0) {
        // The caller decided not to record this trace: its headers pass through unchanged.
        if ((flags & TraceFlags.SAMPLED) === 0) return undefined;
        const name = spanName(request.method);
        const remote: SpanContext = { traceId: traceparent.slice(3, 35), spanId: traceparent.slice(36, 52), traceFlags: flags, isRemote: true };
        const tracestate = request.header('tracestate');
        if (tracestate !== undefined) remote.traceState = new core.TraceState(tracestate);
        const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER }, trace.setSpanContext(ROOT_CONTEXT, remote));
        return new SampledRequest(this, span, name, request, connection, request.header('baggage'));
      }
    }
    // A new trace, decided here by the rule of the provider's root sampler (TraceIdRatioBased)
    // before the SDK is asked for anything: the unsampled majority costs a random trace id and
    // one small object (its span id is made only if an attempt needs it). A sampled one hands
    // the SDK the same trace id, whose sampler then agrees.
    const traceId = this.#ids.random.generateTraceId();
    if (ratioBucket(traceId) >= this.#upperBound) return new UnsampledRequest(traceId, this.#ids, request.header('baggage'));
    this.#ids.preset = traceId;
    const name = spanName(request.method);
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER }, ROOT_CONTEXT);
    return new SampledRequest(this, span, name, request, connection, request.header('baggage'));
  }

  forceFlush(timeoutMs = 5000): Promise<void> {
    return bounded(this.#provider.forceFlush({ timeoutMillis: timeoutMs }), timeoutMs);
  }

  shutdown(timeoutMs = 2000): Promise<void> {
    return bounded(this.#provider.shutdown(), timeoutMs);
  }
}

/** Random ids, except that the next trace id can be chosen: the one already sampled in startRequest. */
class PresetIdGenerator implements tracing.IdGenerator {
  readonly random = new tracing.RandomIdGenerator();
  preset: string | undefined;

  generateTraceId(): string {
    const id = this.preset;
    if (id === undefined) return this.random.generateTraceId();
    this.preset = undefined;
    return id;
  }

  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}

/**
 * A new trace that the ratio left out: nothing is recorded, but upstreams still learn the
 * decision (`traceparent` with the sampled flag clear) so the whole trace is left out alike.
 * Serves as its own attempt span: every attempt sends the same headers.
 */
class UnsampledRequest implements RequestSpan, AttemptSpan {
  readonly traceId: string;
  readonly sampled = false;
  #spanId: string | undefined;
  #headers: string[] | undefined;
  readonly #ids: PresetIdGenerator;
  readonly #baggage: string | undefined;

  constructor(traceId: string, ids: PresetIdGenerator, baggage: string | undefined) {
    this.traceId = traceId;
    this.#ids = ids;
    this.#baggage = baggage;
  }

  /** Made when first needed: a request rejected before any attempt never needs it. */
  get spanId(): string {
    return (this.#spanId ??= this.#ids.random.generateSpanId());
  }

  get headers(): readonly string[] {
    if (this.#headers === undefined) {
      const traceparent = `00-${this.traceId}-${this.spanId}-00`;
      this.#headers = this.#baggage === undefined ? ['traceparent', traceparent] : ['traceparent', traceparent, 'baggage', this.#baggage];
    }
    return this.#headers;
  }

  setRoute(): void {}
  startAttempt(): AttemptSpan {
    return this;
  }
  end(): void {}
}

/** TraceIdRatioBasedSampler's bound and bucket (sdk-trace 2.x), inlined for the unsampled path; tracing.test.ts checks they agree. */
export function ratioUpperBound(ratio: number): number {
  const r = Number.isNaN(ratio) ? 0 : Math.min(Math.max(ratio, 0), 1);
  return r === 1 ? 0x100000000 : Math.floor(r * 0xffffffff);
}

export function ratioBucket(traceId: string): number {
  let acc = 0;
  for (let i = 0; i < 32; i += 8) {
    let part = 0;
    for (let j = 0; j < 8; j++) part = (part << 4) | hexDigit(traceId.charCodeAt(i + j));
    acc = (acc ^ part) >>> 0;
  }
  return acc;
}

class SampledRequest implements RequestSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled = true;
  readonly #tracer: OtelTracer;
  readonly #span: Span;
  readonly #method: string;
  readonly #target: string;
  readonly #context;
  readonly #tracestate: string | undefined;
  readonly #baggage: string | undefined;
  #route: string | undefined;
  #cluster: string | undefined;
  #attempts = 0;

  constructor(tracer: OtelTracer, span: Span, name: string, request: TracedRequest, connection: ConnectionInfo | undefined, baggage: string | undefined) {
    const sc = span.spanContext();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.#tracer = tracer;
    this.#span = span;
    this.#method = name;
    this.#target = request.target;
    this.#context = trace.setSpan(ROOT_CONTEXT, span);
    const ts = sc.traceState?.serialize();
    this.#tracestate = ts === '' ? undefined : ts;
    this.#baggage = baggage;
    span.setAttributes(serverAttributes(request, connection));
  }

  setRoute(route: string, cluster: string | undefined): void {
    this.#route = route;
    this.#cluster = cluster;
    this.#span.updateName(`${this.#method} ${route}`);
    this.#span.setAttribute(ATTR_TSMESH_ROUTE, route);
    if (cluster !== undefined) this.#span.setAttribute(ATTR_TSMESH_CLUSTER, cluster);
  }

  startAttempt(attempt: number, endpoint: string): AttemptSpan {
    this.#attempts = Math.max(this.#attempts, attempt);
    const [host, port] = splitHostPort(endpoint);
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: this.#method === 'HTTP' ? '_OTHER' : this.#method,
      [ATTR_SERVER_ADDRESS]: host,
      [ATTR_NETWORK_PEER_ADDRESS]: host,
      [ATTR_URL_FULL]: `http://${endpoint}${this.#target.startsWith('/') ? this.#target : '/'}`,
      [ATTR_TSMESH_ATTEMPT]: attempt,
    };
    if (port !== undefined) {
      attributes[ATTR_SERVER_PORT] = port;
      attributes[ATTR_NETWORK_PEER_PORT] = port;
    }
    if (attempt > 1) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = attempt - 1;
    if (this.#route !== undefined) attributes[ATTR_TSMESH_ROUTE] = this.#route;
    if (this.#cluster !== undefined) attributes[ATTR_TSMESH_CLUSTER] = this.#cluster;
    const span = this.#tracer.tracer.startSpan(this.#method, { kind: SpanKind.CLIENT, attributes }, this.#context);
    const sc = span.spanContext();
    const headers = ['traceparent', `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`];
    if (this.#tracestate !== undefined) headers.push('tracestate', this.#tracestate);
    if (this.#baggage !== undefined) headers.push('baggage', this.#baggage);
    return new SampledAttempt(span, headers);
  }

  end(status: number, reason?: string): void {
    const span = this.#span;
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (this.#attempts > 0) span.setAttribute(ATTR_TSMESH_ATTEMPTS, this.#attempts);
    const rejected = reason !== undefined && reason !== 'none';
    if (rejected) span.setAttribute(ATTR_TSMESH_REASON, reason);
    // Server spans are errors for 5xx only: a 4xx is the client's mistake, not this hop's.
    if (status >= 500) {
      span.setAttribute(ATTR_ERROR_TYPE, rejected ? reason : String(status));
      span.setStatus({ code: SpanStatusCode.ERROR, message: rejected ? reason : undefined });
    } else if (rejected) {
      span.setAttribute(ATTR_ERROR_TYPE, reason);
    }
    span.end();
  }
}

class SampledAttempt implements AttemptSpan {
  readonly headers: readonly string[];
  readonly #span: Span;

  constructor(span: Span, headers: readonly string[]) {
    this.#span = span;
    this.headers = headers;
  }

  end(status: number | undefined, reason?: string): void {
    const span = this.#span;
    const failed = reason !== undefined && reason !== 'none';
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (failed) span.setAttribute(ATTR_TSMESH_REASON, reason);
    // Client spans are errors for 4xx and 5xx, and when no response came at all.
    if (status === undefined || status >= 400) {
      const type = failed ? reason : status === undefined ? 'no_response' : String(status);
      span.setAttribute(ATTR_ERROR_TYPE, type);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failed ? reason : undefined });
    }
    span.end();
  }
}

function serverAttributes(request: TracedRequest, connection: ConnectionInfo | undefined): Attributes {
  const method = request.method;
  const a: Attributes = {};
  if (KNOWN_METHODS.has(method)) a[ATTR_HTTP_REQUEST_METHOD] = method;
  else {
    a[ATTR_HTTP_REQUEST_METHOD] = '_OTHER';
    a[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = method;
  }
  const target = request.target;
  if (target.startsWith('/')) {
    const q = target.indexOf('?');
    a[ATTR_URL_PATH] = q < 0 ? target : target.slice(0, q);
    if (q >= 0) a[ATTR_URL_QUERY] = target.slice(q + 1);
  } else {
    a[ATTR_URL_FULL] = target;
  }
  a[ATTR_URL_SCHEME] = connection?.scheme ?? 'http';
  const host = request.header('host');
  if (host !== undefined) {
    const [name, port] = splitHostPort(host);
    a[ATTR_SERVER_ADDRESS] = name;
    const p = port ?? connection?.serverPort;
    if (p !== undefined) a[ATTR_SERVER_PORT] = p;
  } else if (connection?.serverPort !== undefined) {
    a[ATTR_SERVER_PORT] = connection.serverPort;
  }
  if (connection?.clientAddress !== undefined) a[ATTR_CLIENT_ADDRESS] = connection.clientAddress;
  if (connection?.clientPort !== undefined) a[ATTR_CLIENT_PORT] = connection.clientPort;
  a[ATTR_NETWORK_PROTOCOL_VERSION] = connection?.protocolVersion ?? '1.1';
  if (connection?.listener !== undefined) a[ATTR_TSMESH_LISTENER] = connection.listener;
  const ua = request.header('user-agent');
  if (ua !== undefined) a[ATTR_USER_AGENT_ORIGINAL] = ua;
  return a;
}

 /** Server and client spans are named after the method; unknown methods are "HTTP" (semantic conventions). */
function spanName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'HTTP';
}

/** Resolves when `work` settles or after `ms`, whichever comes first; export failures are not the caller's problem. */
function bounded(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    work.then(done, done);
  });
}

/**
 * The trace flags of a valid W3C `traceparent` (version-traceid-parentid-flags, lower-case hex,
 * ids not all zero, version ff invalid, version 00 exactly 55 characters, later versions may
 * append "-..."), or -1. By hand rather than regexes: it runs on every request that has one.
 */
export function traceparentFlags(v: string): number {
  const n = v.length;
  if (n < 55 || v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return -1;
  const version = hexByte(v, 0);
  if (version < 0 || version === 0xff) return -1;
  if (version === 0 ? n !== 55 : n > 55 && v.charCodeAt(55) !== 45) return -1;
  if (!hexNotZero(v, 3, 35) || !hexNotZero(v, 36, 52)) return -1;
  return hexByte(v, 53);
}

function hexDigit(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
}

function hexByte(v: string, at: number): number {
  const hi = hexDigit(v.charCodeAt(at));
  const lo = hexDigit(v.charCodeAt(at + 1));
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

/** Lower-case hex from `start` to `end`, not all zeros. */
function hexNotZero(v: string, start: number, end: number): boolean {
  let any = 0;
  for (let i = start; i < end; i++) {
    const d = hexDigit(v.charCodeAt(i));
    if (d < 0) return false;
    any |= d;
  }
  return any !== 0;
}

/** "host:port", "[v6]:port" or "host" → [host, port]. */
export function splitHostPort(s: string): [string, number | undefined] {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end > 0) {
      const port = s[end + 1] === ':' ? Number(s.slice(end + 2)) : NaN;
      return [s.slice(1, end), Number.isInteger(port) && port > 0 ? port : undefined];
    }
  }
  const colon = s.lastIndexOf(':');
  if (colon > 0 && s.indexOf(':') === colon) {
    const port = Number(s.slice(colon + 1));
    return [s.slice(0, colon), Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined];
  }
  return [s, undefined];
}
