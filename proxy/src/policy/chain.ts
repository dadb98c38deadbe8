// The handler chain of one (route, cluster), built once per config snapshot. THE order of the
// request path, first = outermost (README "Proxy" and docs/policies.md repeat it):
//
//   rate-limit → concurrency → breaker(maxRequests) → retry → [per attempt: outlier → upstream]
//
// - rate-limit first: the cheapest refusal; a client over its rate costs nothing further, not
//   even a queue slot or a breaker slot.
// - concurrency before the breaker: queueing briefly for a slot is the gentle answer to load;
//   the breaker's maxRequests is the hard cap behind it, and the only cap on clusters without
//   a limiter.
// - breaker before retry: maxRequests counts a request once, however many attempts it makes.
// - retry calls everything below once per attempt, within the deadline and the budget.
// - outlier wraps each attempt and learns from its outcome and `outcome.endpoint` (ejections).
// - upstream: balancer → pool → request → response head (proxy/src/upstream/dispatch.ts).
//
// Adding a policy = one file under proxy/src/policy/ and one line here, at its place in this
// order. A builder returns undefined when its route/cluster does not configure it, and the
// chain then has no step for it at all.
import { buildBreaker } from './breaker.js';
import { buildConcurrency } from './concurrency.js';
import { buildOutlier } from './outlier.js';
import { buildRateLimit } from './rate-limit.js';
import { buildRetry } from './retry.js';
import type { Handler, Policy, PolicyBuildContext } from './types.js';
import { compose } from './types.js';

export type PolicyBuilder = (b: PolicyBuildContext) => Policy | undefined;

/** Wrap the whole request, outermost first. */
export const REQUEST_POLICIES: readonly PolicyBuilder[] = [buildRateLimit, buildConcurrency, buildBreaker, buildRetry];

/** Wrap each upstream attempt, inside retry. */
export const ATTEMPT_POLICIES: readonly PolicyBuilder[] = [buildOutlier];

/** The whole chain in order: what the running proxy builds for every (route, cluster). */
export const POLICY_BUILDERS: readonly PolicyBuilder[] = [...REQUEST_POLICIES, ...ATTEMPT_POLICIES];

/** The policies of one (route, cluster) in chain order, for `compose(buildPolicies(b), upstream)`. */
export function buildPolicies(b: PolicyBuildContext, builders: readonly PolicyBuilder[] = POLICY_BUILDERS): Array<Policy | undefined> {
  return builders.map((build) => build(b));
}

/** Composes the chain for one (route, cluster): `builders` (in order) around the upstream handler. */
export function buildChain(b: PolicyBuildContext, upstream: Handler, builders: readonly PolicyBuilder[] = POLICY_BUILDERS): Handler {
  return compose(buildPolicies(b, builders), upstream);
}
