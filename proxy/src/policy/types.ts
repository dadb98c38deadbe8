// The one shape of every step between the router and the upstream (DESIGN.md, "Request path").
//
//   type Policy = (next: Handler) => Handler
//
// A Handler takes a request context and resolves to an Outcome: either the upstream's
// response head (its body not yet streamed) or a response the proxy makes itself. Failures
// are values (a LocalResponse with a reason), never thrown, so that rejecting under overload
// costs no stack capture and retry/outlier policies can inspect them like any answer.
//
// Policies are built once per config snapshot (per route x cluster) and called per request.
// State that must outlive a snapshot lives in ClusterState/EndpointState, keyed by name.
import type { Clock } from '../clock.js';
import type { Reason } from '../reasons.js';
import type { RouteConfig } from '../config/schema.js';
import type { ClusterState } from '../upstream/cluster-state.js';
import type { EndpointState } from '../upstream/endpoint.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { StateStore } from './state-store.js';
import type { RateLimiterFactory } from './rate-limiter.js';

/** The parts of a client request that policies read. The core owns the bytes. */
export interface ProxyRequest {
  readonly method: string;
  /** The request-target as received (origin-form: path and query). */
  readonly target: string;
  /** First value of a header; name in lower case. */
  header(name: string): string | undefined;
  /** True for GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request with an Idempotency-Key header. */
  readonly idempotent: boolean;
  /** Declared body length; 0 for no body, undefined for chunked. */
  readonly bodyLength: number | undefined;
  /**
   * True while the whole body sent so far is still held in memory (up to the route's replay
   * buffer), so that another attempt can send it again.
   */
  readonly replayable: boolean;
}

export interface RequestContext {
  readonly request: ProxyRequest;
  readonly route: RouteConfig;
  /** The cluster this request goes to (a weighted split is decided before the chain runs). */
  readonly cluster: ClusterState;
  readonly clock: Clock;
  /** clock.now() when the request head was complete. */
  readonly startTime: number;
  /** Absolute clock time by which the whole request must be answered. Policies may only lower it. */
  deadline: number;
  /** Absolute clock time the current attempt must be answered by (perTryTimeout); <= deadline. */
  attemptDeadline: number;
  /** Upstream attempts started so far (the first try is attempt 1). */
  attempts: number;
  /** Endpoints that already failed this request; balancers avoid them when they can. */
  readonly failedEndpoints: EndpointState[];
  /** Set once any byte of this request was written to an upstream socket. */
  requestSent: boolean;
  /** Set when the client went away; whoever is waiting must stop (see `cancel`). */
  aborted: boolean;
  /**
   * Whatever this request is waiting on right now (a queue slot, a backoff sleep, an upstream
   * attempt) puts here how to stop waiting; the core calls it when the client goes away.
   * Cheaper than an AbortController per request; an AbortSignal is built only when asked for.
   */
  cancel: (() => void) | undefined;
  /** Set by the policy that rejected the request, for logs, metrics and traces. */
  reason: Reason | undefined;
}

/** A response the proxy makes itself: a rejection, or a failure to get an upstream answer. */
export interface LocalResponse {
  readonly kind: 'local';
  readonly status: number;
  readonly reason: Reason;
  /** Extra headers, e.g. Retry-After, RateLimit-Policy. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  /** Short human explanation sent in the body. */
  readonly detail?: string;
  /** The endpoint that failed, for upstream_* reasons. */
  readonly endpoint?: EndpointState;
}

/** The upstream's answer: its head has arrived, its body waits until the core streams or discards it. */
export interface UpstreamResponse {
  readonly kind: 'upstream';
  readonly status: number;
  readonly endpoint: EndpointState;
  /** First value of a response header; name in lower case. */
  header(name: string): string | undefined;
  /** Milliseconds from the attempt's start to the response head. */
  readonly latencyMs: number;
  /** Drops this response (e.g. to retry): the body is drained or the connection closed. */
  discard(): void;
}

export type Outcome = LocalResponse | UpstreamResponse;

export type Handler = (ctx: RequestContext) => Promise<Outcome>;

export type Policy = (next: Handler) => Handler;

/** What a policy builder may use: per-proxy services, never per-request state. */
export interface PolicyBuildContext {
  readonly clock: Clock;
  readonly route: RouteConfig;
  readonly cluster: ClusterState;
  /** The route's state that survives config swaps (e.g. rate-limit buckets). */
  readonly routeState: StateStore;
  readonly metrics: ProxyMetrics;
  readonly rateLimiters: RateLimiterFactory;
}

/** Composes policies so that the first in the list is the outermost. */
export function compose(policies: ReadonlyArray<Policy | undefined>, last: Handler): Handler {
  let handler = last;
  for (let i = policies.length - 1; i >= 0; i--) {
    const p = policies[i];
    if (p) handler = p(handler);
  }
  return handler;
}

export function localResponse(reason: Reason, status: number, extra?: Omit<LocalResponse, 'kind' | 'reason' | 'status'>): LocalResponse {
  return { kind: 'local', status, reason, ...extra };
}
