// The one place where the wire types of the contract (proto/gen) meet the proxy's config.
// The data path never sees wire types: a snapshot becomes the plain YAML-shaped document
// (`fromWire`), which is then validated with `validateConfig` exactly like a file. The control
// plane goes the other way (`toWire`) with a document it has already validated.
//
// Field names of the proto messages are those of the YAML (ts-proto's JSON mapping is
// camelCase), so the conversion is ts-proto's JSON mapping; the type checks below make the
// build fail when proto and schema drift apart (a field added to one and not the other).
import type { z } from 'zod';
import * as W from '../../../proto/gen/tsmesh/config/v1/config.js';
import type * as S from './schema.js';

/** A config document as written in YAML (before validation fills defaults and parses units). */
export type ConfigDocument = z.input<typeof S.proxyConfig>;

/** The wire snapshot as a YAML-shaped document: absent fields stay absent; validate it next. */
export function fromWire(snapshot: W.ProxyConfig): Record<string, unknown> {
  return W.ProxyConfig.toJSON(snapshot) as Record<string, unknown>;
}

/**
 * A validated document as a wire snapshot. Sizes written as numbers become their decimal
 * strings; an explicitly empty list becomes an absent one (proto3 cannot tell them apart),
 * which the control plane checks at apply time (see `wireRoundTripProblems`).
 */
export function toWire(doc: ConfigDocument): W.ProxyConfig {
  return W.ProxyConfig.fromJSON(doc);
}

/** Encoded snapshot bytes, e.g. for the disk cache or for measuring a snapshot's size. */
export function encodeSnapshot(snapshot: W.ProxyConfig): Uint8Array {
  return W.ProxyConfig.encode(snapshot).finish();
}

// ---- compile-time check: every YAML field has a proto field of the same name, and back ----
type Keys<T> = keyof NonNullable<T>;
type Same<A, B> = [Exclude<Keys<A>, Keys<B>>, Exclude<Keys<B>, Keys<A>>] extends [never, never]
  ? true
  : { onlyInProto: Exclude<Keys<A>, Keys<B>>; onlyInSchema: Exclude<Keys<B>, Keys<A>> };
type Item<T> = NonNullable<T> extends ReadonlyArray<infer U> ? U : never;
type In<T extends z.ZodType> = z.input<T>;
type RouteIn = In<typeof S.route>;
type MatchIn = NonNullable<RouteIn['match']>;
type RetryIn = In<typeof S.retryPolicy>;
type RateIn = In<typeof S.rateLimit>;
type ClusterIn = In<typeof S.cluster>;
type ConcIn = In<typeof S.concurrency>;

export const wireSchemaInSync: [
  Same<W.ProxyConfig, ConfigDocument>,
  Same<W.Admin, In<typeof S.admin>>,
  Same<W.Listener, In<typeof S.listener>>,
  Same<W.Route, RouteIn>,
  Same<W.RouteMatch, MatchIn>,
  Same<W.PathMatch, MatchIn['path']>,
  Same<W.HeaderMatch, Item<MatchIn['headers']>>,
  Same<W.WeightedCluster, Item<RouteIn['clusters']>>,
  Same<W.RetryPolicy, RetryIn>,
  Same<W.RetryBackoff, RetryIn['backoff']>,
  Same<W.RetryBudget, RetryIn['budget']>,
  Same<W.RateLimit, RateIn>,
  Same<W.RateLimitKey, RateIn['key']>,
  Same<W.Cluster, ClusterIn>,
  Same<W.Pool, ClusterIn['pool']>,
  Same<W.CircuitBreaker, In<typeof S.circuitBreaker>>,
  Same<W.OutlierDetection, In<typeof S.outlierDetection>>,
  Same<W.HealthCheck, In<typeof S.healthCheck>>,
  Same<W.Concurrency, ConcIn>,
  Same<W.AdaptiveConcurrency, ConcIn['adaptive']>,
  Same<W.ConcurrencyQueue, ConcIn['queue']>,
  Same<W.Drain, In<typeof S.drain>>,
  Same<W.AccessLog, In<typeof S.accessLog>>,
  Same<W.Tracing, In<typeof S.tracing>>,
  Same<W.ControlPlane, In<typeof S.controlPlane>>,
  Same<W.Redis, In<typeof S.redis>>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
