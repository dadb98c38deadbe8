// Per-route rate limit (issue 3, "Rate limits"): one token per request from the route's
// limiter, optionally per key (a request header's value); without a token, 429 rate_limited
// with Retry-After and the IETF RateLimit fields.
//
// Header syntax: draft-ietf-httpapi-ratelimit-headers-10 (structured-field lists, unchanged
// through -11), https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/ :
//   RateLimit-Policy: "<route>";q=<quota>;w=<window seconds>;tsmesh-burst=<bucket size>
//   RateLimit:        "<route>";r=<remaining>;t=<seconds until a token>
// A token bucket has no fixed window; the policy states its sustained rate as q requests per
// w seconds (w the smallest whole number of seconds holding at least one request) and the
// bucket size as a vendor parameter, which the draft allows (section 3.1). The fields are sent
// on rejections, which the proxy answers itself; the draft does not require them on every
// response (section 6.2).
//
// The limiter comes from b.rateLimiters (local token buckets, or Redis-backed global limits
// for `global: true`) and is kept in the route's state, so buckets survive config swaps while
// the rateLimit block and the factory stay the same (the proxy gives a new factory when the
// config's Redis URL changes). It is closed when either changes, when the route
// drops its rateLimit block, and when the route leaves the config (StateRegistry.retain
// disposes the route's state). Requests still finishing on the old snapshot may call take()
// after close(); a limiter must still answer them.
import { createHash } from 'node:crypto';
import type { RateLimitConfig } from '../config/schema.js';
import type { RateLimiter, RateLimiterFactory } from './rate-limiter.js';
import type { DisposableState } from './state-store.js';
import { burstOf } from './token-bucket.js';
import type { Outcome, Policy, PolicyBuildContext } from './types.js';
import { localResponse } from './types.js';

/** Longer header values are hashed: buckets keyed by a hostile 30 KiB header cost 43 bytes. */
const MAX_KEY_LENGTH = 128;

/** The route's limiter and the rateLimit block it was built for; closed when disposed. */
class RouteLimiter implements DisposableState {
  configKey = '';
  limiter: RateLimiter | undefined;
  factory: RateLimiterFactory | undefined;

  dispose(): void {
    const l = this.limiter;
    this.limiter = undefined;
    this.configKey = '';
    this.factory = undefined;
    l?.close();
  }
}

export function buildRateLimit(b: PolicyBuildContext): Policy | undefined {
  const cfg = b.route.rateLimit;
  if (!cfg) {
    b.routeState.drop('rate-limit');
    return undefined;
  }
  const held = b.routeState.stateOf('rate-limit', () => new RouteLimiter());
  const configKey = JSON.stringify(cfg);
  if (!held.limiter || held.configKey !== configKey || held.factory !== b.rateLimiters) {
    held.limiter?.close();
    held.limiter = b.rateLimiters(b.route.name, cfg);
    held.configKey = configKey;
    held.factory = b.rateLimiters;
  }
  const limiter = held.limiter;
  const keyHeader = cfg.key?.header;
  const name = JSON.stringify(b.route.name);
  const policyField = rateLimitPolicyField(name, cfg);

  return (next) => (ctx) => {
    const key = keyHeader === undefined ? '' : boundedKey(ctx.request.header(keyHeader) ?? '');
    const r = limiter.take(key);
    if (r.allowed) return next(ctx);
    const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    ctx.reason = 'rate_limited';
    return Promise.resolve<Outcome>(
      localResponse('rate_limited', 429, {
        headers: [
          ['retry-after', String(seconds)],
          ['ratelimit-policy', policyField],
          ['ratelimit', `${name};r=${r.remaining};t=${seconds}`],
        ],
        detail: `rate limit of route ${b.route.name} reached`,
      }),
    );
  };
}

export function rateLimitPolicyField(quotedName: string, cfg: RateLimitConfig): string {
  const window = Math.max(1, Math.ceil(1 / cfg.requestsPerSecond));
  const quota = Math.floor(cfg.requestsPerSecond * window);
  const burst = burstOf(cfg);
  return `${quotedName};q=${quota};w=${window};tsmesh-burst=${burst}`;
}

export function boundedKey(value: string): string {
  if (value.length <= MAX_KEY_LENGTH) return value;
  return 'sha256:' + createHash('sha256').update(value).digest('base64url');
}
