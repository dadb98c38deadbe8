// The seam between the rate-limit policy and where tokens come from: a local token bucket
// per proxy, or a global limit counted in Redis and leased to proxies in batches.
import type { ProxyConfig, RateLimitConfig } from '../config/schema.js';

export interface TakeResult {
  readonly allowed: boolean;
  /** Tokens left in the caller's view of the bucket after this take. */
  readonly remaining: number;
  /** Milliseconds until a token is expected (0 when allowed). */
  readonly retryAfterMs: number;
}

export interface RateLimiter {
  /** Takes one token for a key (the header value, or "" when the limit is not keyed). */
  take(key: string): TakeResult;
  /** Stops background work (lease refresh, Redis connections). */
  close(): void;
}

/** Builds the limiter of one route's rate limit; the proxy passes a global-aware one when Redis is configured. */
export type RateLimiterFactory = (routeName: string, config: RateLimitConfig) => RateLimiter;

/**
 * Gives the proxy the factory for each config it applies, so that what the factory depends on
 * (the config's Redis URL) can change between snapshots. A provider returns the same factory
 * while that does not change; a new factory makes routes build new limiters (rate-limit.ts).
 */
export interface RateLimiterProvider {
  /** Called once per apply, after the new config's listeners are bound and before it is compiled. */
  forConfig(config: ProxyConfig): Promise<RateLimiterFactory>;
  close(): Promise<void>;
}
