// The handler chain of one (route, cluster), built once per config snapshot. THE order of the
// request path, first = outermost (README "Proxy" repeats it):
//
//   rate-limit → concurrency → breaker(maxRequests) → retry → [per attempt: outlier → upstream]
//
// - rate-limit first: the cheapest refusal, before a request takes any shared resource.
// - concurrency: admission by the cluster's (adaptive) limit; queued requests wait here.
// - breaker: the cluster's maxRequests threshold on requests admitted.
// - retry: calls everything below once per attempt, within the deadline and the budget.
// - outlier: wraps each attempt and learns from its outcome (ejections).
// - upstream: balancer → pool → request → response head (proxy/src/upstream/dispatch.ts).
//
// Adding a policy = one file under proxy/src/policy/ and one line in POLICY_BUILDERS, at its
// place in this order. A builder returns undefined when its route/cluster does not configure
// it, and the chain then has no step for it at all.
import type { Handler, Policy, PolicyBuildContext } from './types.js';
import { compose } from './types.js';

export type PolicyBuilder = (b: PolicyBuildContext) => Policy | undefined;

export const POLICY_BUILDERS: readonly PolicyBuilder[] = [
  // rateLimitPolicy,   // proxy/src/policy/rate-limit.ts
  // concurrencyPolicy, // proxy/src/policy/concurrency.ts
  // breakerPolicy,     // proxy/src/policy/breaker.ts
  // retryPolicy,       // proxy/src/policy/retry.ts
  // outlierPolicy,     // proxy/src/upstream/outlier.ts (per attempt, below retry)
];

/** Composes the chain for one (route, cluster): `builders` (in order) around the upstream handler. */
export function buildChain(b: PolicyBuildContext, upstream: Handler, builders: readonly PolicyBuilder[] = POLICY_BUILDERS): Handler {
  return compose(builders.map((build) => build(b)), upstream);
}
