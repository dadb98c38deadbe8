// What every balancer shares: which endpoints it may pick from. Endpoints that are ejected or
// unhealthy (`available(now)` false) are skipped, and so are the ones this request already
// failed on, unless that leaves nothing. Panic mode (Envoy's panic threshold): when fewer than
// half of the endpoints are available, the gates are ignored and every endpoint is a candidate,
// because sending to a possibly-bad endpoint beats refusing all traffic.
import type { EndpointState } from '../endpoint.js';

export interface Balancer {
  /** Picks an endpoint for one attempt; undefined only when the cluster has no endpoints. */
  pick(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): EndpointState | undefined;
}

/** Fraction of available endpoints below which the gates are ignored. */
export const PANIC_THRESHOLD = 0.5;

/**
 * The endpoints a balancer chooses among. Returns the input array itself in the common case
 * (all available, nothing failed): no allocation on the hot path.
 */
export function candidates(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): readonly EndpointState[] {
  const n = endpoints.length;
  let available = 0;
  for (let i = 0; i < n; i++) if (endpoints[i]!.available(now)) available++;
  if (available === n && failed.length === 0) return endpoints;

  const panic = available < n * PANIC_THRESHOLD;
  const pool: EndpointState[] = [];
  for (let i = 0; i < n; i++) {
    const ep = endpoints[i]!;
    if (panic || ep.available(now)) pool.push(ep);
  }
  if (failed.length === 0) return pool;
  const fresh = pool.filter((ep) => !failed.includes(ep));
  if (fresh.length > 0) return fresh;
  // Everything left already failed this request: another try on a failed endpoint beats none,
  // preferring ones that are not gated.
  return pool.length > 0 ? pool : endpoints;
}

/**
 * The power of two choices among the candidates: two distinct random ones, the lower `cost`
 * wins (the first drawn on a tie). `cost` is a plain function of the endpoint, not a closure,
 * so picking allocates nothing beyond the index pair.
 */
export function pickOfTwo(
  endpoints: readonly EndpointState[],
  failed: readonly EndpointState[],
  now: number,
  random: () => number,
  cost: (ep: EndpointState, now: number) => number,
): EndpointState | undefined {
  const pool = candidates(endpoints, failed, now);
  if (pool.length <= 1) return pool[0];
  const [a, b] = twoChoices(pool.length, random);
  const ea = pool[a]!;
  const eb = pool[b]!;
  return cost(eb, now) < cost(ea, now) ? eb : ea;
}

/** Two distinct random indexes in [0, n) (n >= 2). */
export function twoChoices(n: number, random: () => number): [number, number] {
  const a = Math.floor(random() * n);
  let b = Math.floor(random() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}
