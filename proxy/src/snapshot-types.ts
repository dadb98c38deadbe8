// What a compiled config snapshot gives the request path of one listener: the router with its
// per-(route, cluster) targets, the limits, and the shared services. Built once per apply;
// a request keeps the snapshot it started with.
import type { Clock } from './clock.js';
import type { ListenerConfig, RouteConfig } from './config/schema.js';
import type { HeadLimits } from './http/request-head.js';
import type { Handler } from './policy/types.js';
import type { Router } from './router.js';
import type { AccessLog } from './telemetry/access-log.js';
import type { RouteStats } from './telemetry/hot-stats.js';
import type { Tracer } from './telemetry/tracing.js';
import type { ClusterState } from './upstream/cluster-state.js';

/** One (route, cluster) pair: the handler chain and the metric children, bound once per snapshot. */
export interface RouteTarget {
  readonly route: RouteConfig;
  readonly cluster: ClusterState;
  readonly handler: Handler;
  readonly stats: RouteStats;
  /** Request body bytes kept in memory so another attempt can resend them. */
  readonly replayLimit: number;
}

export interface ListenerSnapshot {
  readonly config: ListenerConfig;
  readonly version: string;
  readonly router: Router<RouteTarget>;
  readonly limits: HeadLimits;
  /** Requests answered before a route was chosen (no_route, bad_request, overloaded, draining). */
  readonly unroutedStats: RouteStats;
  readonly accessLog: AccessLog;
  /** undefined when tracing is off: the request path then tests this one field and does nothing else. */
  readonly tracer: Tracer | undefined;
  readonly clock: Clock;
}
