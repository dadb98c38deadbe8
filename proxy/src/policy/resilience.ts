// The resilience policies in chain order (first is outermost), for the core's chain builder:
//
//   rate-limit → concurrency → breaker(maxRequests) → retry → [per attempt: outlier → upstream]
//
// - rate-limit first: a client over its rate costs nothing further, not even a queue slot.
// - concurrency before the breaker: queueing for a slot is the gentle answer to load; the
//   breaker's maxRequests is the hard cap behind it for clusters without a limiter.
// - breaker before retry: maxRequests counts a request once, however many attempts it makes.
// - retry calls its `next` once per attempt; outlier sees each attempt's outcome and endpoint.
import { buildBreaker } from './breaker.js';
import { buildConcurrency } from './concurrency.js';
import { buildOutlier } from './outlier.js';
import { buildRateLimit } from './rate-limit.js';
import { buildRetry } from './retry.js';
import type { Policy, PolicyBuildContext } from './types.js';

export type PolicyBuilder = (b: PolicyBuildContext) => Policy | undefined;

/** Wrap the whole request, outermost first. */
export const REQUEST_POLICIES: readonly PolicyBuilder[] = [buildRateLimit, buildConcurrency, buildBreaker, buildRetry];

/** Wrap each upstream attempt, inside retry. */
export const ATTEMPT_POLICIES: readonly PolicyBuilder[] = [buildOutlier];

/** All of them in chain order, for `compose(buildResiliencePolicies(b), upstream)`. */
export function buildResiliencePolicies(b: PolicyBuildContext): Array<Policy | undefined> {
  return [...REQUEST_POLICIES, ...ATTEMPT_POLICIES].map((build) => build(b));
}
