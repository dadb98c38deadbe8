// Peak-EWMA (Linkerd's default, after Finagle): each endpoint keeps a round-trip estimate that
// jumps up at once on a slower sample and decays towards faster ones with time constant tau;
// cost = estimate x (outstanding + 1); two random candidates, the cheaper wins.
// Load biasing (issue 3): a 429 or 503 answer is recorded as a slow sample (a penalty) so that
// load moves away from endpoints that shed, as a slow endpoint's would.
import type { EndpointState } from '../endpoint.js';
import { pickOfTwo, type Balancer } from './balancer.js';

/** Decay time constant of the estimate (Linkerd: 10 s). */
export const EWMA_TAU_MS = 10_000;
/** Estimate of an endpoint without samples yet (Linkerd's default RTT). */
export const DEFAULT_RTT_MS = 30;
/** A shedding answer counts as at least this slow, and as at least this multiple of the estimate. */
export const PENALTY_FLOOR_MS = DEFAULT_RTT_MS;
export const PENALTY_FACTOR = 3;

/** The endpoint's estimate decayed to `now` (read-only). */
export function currentEstimate(ep: EndpointState, now: number): number {
  if (ep.rttUpdatedAt === 0) return DEFAULT_RTT_MS;
  const elapsed = now - ep.rttUpdatedAt;
  return elapsed <= 0 ? ep.rttEstimate : ep.rttEstimate * Math.exp(-elapsed / EWMA_TAU_MS);
}

/** Records one round-trip sample (ms) taken at `now`. */
export function recordRtt(ep: EndpointState, rttMs: number, now: number): void {
  if (ep.rttUpdatedAt === 0 || rttMs > ep.rttEstimate) {
    ep.rttEstimate = rttMs; // peak: a slower sample takes over at once
  } else {
    const decay = Math.exp(-Math.max(0, now - ep.rttUpdatedAt) / EWMA_TAU_MS);
    ep.rttEstimate = ep.rttEstimate * decay + rttMs * (1 - decay);
  }
  ep.rttUpdatedAt = now;
}

/** Records a shedding answer (429/503) as a slow sample. */
export function recordPenalty(ep: EndpointState, now: number): void {
  recordRtt(ep, Math.max(currentEstimate(ep, now) * PENALTY_FACTOR, PENALTY_FLOOR_MS), now);
}

export function ewmaCost(ep: EndpointState, now: number): number {
  return currentEstimate(ep, now) * (ep.outstanding + 1);
}

export class PeakEwmaBalancer implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  pick(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): EndpointState | undefined {
    return pickOfTwo(endpoints, failed, now, this.random, ewmaCost);
  }
}
