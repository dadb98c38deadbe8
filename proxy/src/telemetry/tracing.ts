// Distributed tracing for the request path: a server span per request, a client span per
// upstream attempt, W3C trace context (`traceparent`, `tracestate`) and `baggage` carried from
// the client to every attempt, OTLP export. This file is the whole contract the core uses; the
// OpenTelemetry SDK lives behind it in tracing-otel.ts and is loaded only when tracing is on.
//
// Cost when off: `createTracer` returns undefined, the SDK is never imported, nothing global
// is registered (no tracer provider, no context manager, no async hooks), and the request path
// pays one field check: `const span = proxy.tracer?.startRequest(req, conn)`.
//
// Why no global context manager even when on: OpenTelemetry's usual Node setup (NodeSDK)
// installs an AsyncLocalStorage context manager, which in Node 20 rides on async_hooks and
// slows every promise in the process, traced or not. The proxy has the request in hand
// everywhere, so the span travels explicitly: the request span object is the context. It also
// lets several proxies live in one process (tests) with their own service names and exporters.
//
// How the core uses it:
//
//   const span = tracer?.startRequest(request, connectionInfo)  // request head complete
//   span?.setRoute(route.name, cluster.name)                     // after routing
//   const a = span?.startAttempt(n, endpoint.address)            // before each upstream attempt
//   if (a) { drop incoming PROPAGATION_HEADERS; append a.headers }  // flat [name, value, ...]
//   a?.end(upstreamStatus | undefined, reason)                   // response head, or failure
//   span?.end(status, reason)                                    // response sent (or abandoned)
//
// `startRequest` returns undefined when the caller already decided not to sample (a valid
// incoming `traceparent` without the sampled flag): the incoming trace headers then pass through
// unchanged, exactly as when tracing is off, and nothing else is allocated.
import type { TracingConfig } from '../config/schema.js';
import type { tracing } from '@opentelemetry/sdk-node';

/** Request headers the tracer owns: when an attempt span exists, the core sends its headers instead of these. */
export const PROPAGATION_HEADERS: readonly string[] = ['traceparent', 'tracestate', 'baggage'];

/** The parts of a request the tracer reads. `ProxyRequest` (policy/types.ts) fits as it is: no closure per request. */
export interface TracedRequest {
  readonly method: string;
  /** The request-target as received (origin-form: path and query). */
  readonly target: string;
  /** First value of a header; name in lower case. */
  header(name: string): string | undefined;
}

/** Facts about the client connection; the core can keep one object per connection. */
export interface ConnectionInfo {
  readonly listener?: string;
  readonly scheme?: string;
  readonly clientAddress?: string;
  readonly clientPort?: number;
  /** The listener's local port (used when the Host header has none). */
  readonly serverPort?: number;
  /** "1.1" or "1.0". */
  readonly protocolVersion?: string;
}

export interface RequestSpan {
  /** 32 lower-case hex digits; for the access log. */
  readonly traceId: string;
  /** The proxy's span id (16 hex digits). */
  readonly spanId: string;
  /** True when this request's spans are recorded and exported. */
  readonly sampled: boolean;
  /** Names the span after the route and tags it with route and cluster; call once routed. */
  setRoute(route: string, cluster: string | undefined): void;
  /**
   * Starts the client span of upstream attempt `attempt` (1 for the first try) to `endpoint`
   * ("host:port"). Retries are separate attempts.
   */
  startAttempt(attempt: number, endpoint: string): AttemptSpan;
  /** Ends the request span; `reason` is the rejection code, or undefined / "none" for upstream answers. */
  end(status: number, reason?: string): void;
}

export interface AttemptSpan {
  /** Trace headers for this attempt, flat: [name, value, name, value, ...]; append them to the upstream request. */
  readonly headers: readonly string[];
  /** `status` is the upstream's status code, or undefined when no response head came (connect failure, reset, timeout). */
  end(status: number | undefined, reason?: string): void;
}

export interface Tracer {
  /** Starts the server span of a request; undefined when the caller's unsampled trace context should pass through. */
  startRequest(request: TracedRequest, connection?: ConnectionInfo): RequestSpan | undefined;
  /** Exports every finished span now; gives up after `timeoutMs` (default 5 s). */
  forceFlush(timeoutMs?: number): Promise<void>;
  /**
   * Exports what is left and stops; later spans are dropped. Waits at most `timeoutMs`
   * (default 2 s) so that an unreachable collector cannot hold up a drain.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

export interface TracerOptions {
  /** Replaces the OTLP exporter built from the config (tests, benchmarks). */
  exporter?: tracing.SpanExporter;
  /** Added to the resource, e.g. { 'service.instance.id': nodeName }. */
  resourceAttributes?: Record<string, string>;
}

/** Returns undefined, and loads nothing, when tracing is off. */
export async function createTracer(config: TracingConfig, options: TracerOptions = {}): Promise<Tracer | undefined> {
  if (!config.enabled) return undefined;
  const { createOtelTracer } = await import('./tracing-otel.js');
  return createOtelTracer(config, options);
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

/** The trace id of a `traceparent` value, for logging requests whose trace passed through untouched. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  const m = TRACEPARENT.exec(traceparent);
  return m && m[1] !== '00000000000000000000000000000000' ? m[1] : undefined;
}
