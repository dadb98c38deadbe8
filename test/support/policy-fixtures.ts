// Inputs for policy unit tests: config objects parsed by the real schema (so defaults are the
// real ones), request contexts, and the Outcome values a bottom handler returns. A `next`
// handler in these tests is a plain function returning Outcome values: it is the policy's
// input, not a mock of a server.
import { Registry } from 'prom-client';
import { FakeClock } from '../../proxy/src/clock.js';
import { cluster as clusterSchema, route as routeSchema, type ClusterConfig, type RouteConfig } from '../../proxy/src/config/schema.js';
import type { Reason } from '../../proxy/src/reasons.js';
import { REASON_STATUS } from '../../proxy/src/reasons.js';
import type { LocalResponse, PolicyBuildContext, ProxyRequest, RequestContext, UpstreamResponse } from '../../proxy/src/policy/types.js';
import { StateStore } from '../../proxy/src/policy/state-store.js';
import type { RateLimiterFactory } from '../../proxy/src/policy/rate-limiter.js';
import { ClusterState } from '../../proxy/src/upstream/cluster-state.js';
import type { EndpointState } from '../../proxy/src/upstream/endpoint.js';
import { ProxyMetrics } from '../../proxy/src/telemetry/metrics.js';

/** A route config as the schema outputs it, from YAML-shaped input (durations as strings). */
export function routeConfig(input: Record<string, unknown> = {}): RouteConfig {
  return routeSchema.parse({ name: 'query', cluster: 'gateway', ...input });
}

export function clusterConfig(input: Record<string, unknown> = {}): ClusterConfig {
  return clusterSchema.parse({ name: 'gateway', endpoints: ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'], ...input });
}

export interface RequestInit {
  method?: string;
  target?: string;
  headers?: Record<string, string>;
  idempotent?: boolean;
  replayable?: boolean;
  bodyLength?: number;
}

export function fakeRequest(init: RequestInit = {}): ProxyRequest {
  const method = init.method ?? 'GET';
  const headers = Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const idempotent = init.idempotent ?? (['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'].includes(method) || 'idempotency-key' in headers);
  return {
    method,
    target: init.target ?? '/',
    header: (name) => headers[name],
    idempotent,
    bodyLength: init.bodyLength ?? 0,
    replayable: init.replayable ?? true,
  };
}

export interface ContextInit extends RequestInit {
  timeoutMs?: number;
}

export function makeContext(clock: FakeClock, route: RouteConfig, cluster: ClusterState, init: ContextInit = {}): RequestContext {
  const now = clock.now();
  const deadline = now + (init.timeoutMs ?? route.timeout);
  return {
    request: fakeRequest(init),
    route,
    cluster,
    clock,
    startTime: now,
    deadline,
    attemptDeadline: deadline,
    attempts: 0,
    failedEndpoints: [],
    requestSent: false,
    aborted: false,
    cancel: undefined,
    reason: undefined,
  };
}

/** Aborts a request the way the core does when its client goes away. */
export function abort(ctx: RequestContext): void {
  ctx.aborted = true;
  const c = ctx.cancel;
  ctx.cancel = undefined;
  c?.();
}

export interface FakeUpstreamResponse extends UpstreamResponse {
  discarded: boolean;
}

export function upstreamResponse(status: number, endpoint: EndpointState, headers: Record<string, string> = {}, latencyMs = 1): FakeUpstreamResponse {
  const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const r: FakeUpstreamResponse = {
    kind: 'upstream',
    status,
    endpoint,
    header: (name) => h[name],
    latencyMs,
    discarded: false,
    discard() {
      r.discarded = true;
    },
  };
  return r;
}

export function failure(reason: Reason, endpoint?: EndpointState): LocalResponse {
  return { kind: 'local', status: REASON_STATUS[reason], reason, ...(endpoint ? { endpoint } : {}) };
}

export interface Harness {
  clock: FakeClock;
  metrics: ProxyMetrics;
  cluster: ClusterState;
  route: RouteConfig;
  routeState: StateStore;
  build(overrides?: Partial<PolicyBuildContext>): PolicyBuildContext;
  ctx(init?: ContextInit): RequestContext;
}

const noRateLimiters: RateLimiterFactory = () => {
  throw new Error('no rate limiter factory in this test');
};

export function harness(opts: { route?: Record<string, unknown>; cluster?: Record<string, unknown>; clock?: FakeClock } = {}): Harness {
  const clock = opts.clock ?? new FakeClock();
  const metrics = new ProxyMetrics(new Registry());
  const cluster = new ClusterState(clusterConfig(opts.cluster));
  const route = routeConfig(opts.route);
  const routeState = new StateStore();
  const h: Harness = {
    clock,
    metrics,
    cluster,
    route,
    routeState,
    build: (overrides = {}) => ({ clock, route: h.route, cluster, routeState, metrics, rateLimiters: noRateLimiters, ...overrides }),
    ctx: (init = {}) => makeContext(clock, h.route, cluster, init),
  };
  return h;
}

/** Value of one metric sample (after scrape hooks ran), or 0 when absent. */
export async function metricValue(metrics: ProxyMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const all = await metrics.registry.getMetricsAsJSON();
  const m = all.find((x) => x.name === name);
  if (!m) throw new Error(`no metric ${name}`);
  const values = (m as unknown as { values: { value: number; labels: Record<string, string | number> }[] }).values;
  const v = values.find((s) => Object.entries(labels).every(([k, want]) => String(s.labels[k]) === want));
  return v?.value ?? 0;
}

/** Lets pending promise continuations run (no timers move). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}
