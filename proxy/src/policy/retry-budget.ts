// The retry budget (issue 3, "Retries"): retries may be at most `percent` % of the attempts
// (first tries and retries) sent to a cluster in the last 10 seconds, counted rather than
// measured by concurrency, as Finagle's RetryBudget and Linkerd's retryBudget do. With
// percent p that is at most p / (100 - p) retries per first try: 20 % allows 0.25, so a
// cluster whose every answer fails gets at most 1.25 attempts per request.
//
// Why counts and not Envoy's concurrency budget (active retries <= percent % of active
// requests): a retry holds its slot through its backoff, so with backoff B and attempt latency
// L that rule allows only about 0.25 * L / (B + L) retries per request, well below the 0.24
// that 20 % failures need for 99 % success; and an attempt that fails at once is never
// "active", so the rule cannot see the load it adds. docs/policies.md, "Retry budget", has the
// measurements.
//
// `minConcurrent` keeps Envoy's meaning as a floor for low traffic (where 25 % of a handful of
// requests is less than one retry), bounded so it cannot multiply the load when everything
// fails: when the ratio allows less, a retry is still allowed while fewer than minConcurrent
// retries are in flight AND the window holds fewer than minConcurrent x window-seconds
// retries. The floor replaces the ratio's allowance rather than adding to it, so once traffic
// is high enough for the ratio to allow more than the floor, the ratio alone decides and a
// failing cluster gets at most 1.25 attempts per request. With N first tries and R retries in
// the window:
//
//   allowed = R < ratio * N  ||  (activeRetries < minConcurrent && R < minConcurrent * windowSeconds)
//
// The counts live in a ring of 100 ms buckets, one per cluster in ClusterState, so they
// survive config swaps; recording and checking are O(1) amortised (a bucket is cleared once
// per 100 ms at most) and allocate nothing.
import type { ClusterState } from '../upstream/cluster-state.js';

export const RETRY_BUDGET_WINDOW_MS = 10_000;
export const RETRY_BUDGET_BUCKET_MS = 100;

/** First tries and retries sent to one cluster in the last window (a sliding window of buckets). */
export class RetryWindow {
  readonly windowMs: number;
  readonly windowSeconds: number;
  private readonly bucketMs: number;
  private readonly size: number;
  private readonly firstTries: Float64Array;
  private readonly retriesIn: Float64Array;
  /** Absolute number (time / bucketMs) of the newest bucket. */
  private newest = Number.NEGATIVE_INFINITY;
  private slot = 0;
  private firstTotal = 0;
  private retryTotal = 0;

  constructor(windowMs = RETRY_BUDGET_WINDOW_MS, bucketMs = RETRY_BUDGET_BUCKET_MS) {
    this.windowMs = windowMs;
    this.windowSeconds = windowMs / 1000;
    this.bucketMs = bucketMs;
    this.size = Math.max(1, Math.ceil(windowMs / bucketMs));
    this.firstTries = new Float64Array(this.size);
    this.retriesIn = new Float64Array(this.size);
  }

  /** First tries in the window ending at `now`. */
  firstTriesAt(now: number): number {
    this.advance(now);
    return this.firstTotal;
  }

  /** Retries in the window ending at `now`. */
  retriesAt(now: number): number {
    this.advance(now);
    return this.retryTotal;
  }

  recordFirstTry(now: number): void {
    this.advance(now);
    this.firstTries[this.slot]!++;
    this.firstTotal++;
  }

  recordRetry(now: number): void {
    this.advance(now);
    this.retriesIn[this.slot]!++;
    this.retryTotal++;
  }

  /** Moves the window's end to `now`, forgetting buckets that fell out of it. Time never goes back. */
  private advance(now: number): void {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket <= this.newest) return;
    if (bucket - this.newest >= this.size) {
      this.firstTries.fill(0);
      this.retriesIn.fill(0);
      this.firstTotal = 0;
      this.retryTotal = 0;
    } else {
      for (let b = this.newest + 1; b <= bucket; b++) {
        const s = ((b % this.size) + this.size) % this.size;
        this.firstTotal -= this.firstTries[s]!;
        this.retryTotal -= this.retriesIn[s]!;
        this.firstTries[s] = 0;
        this.retriesIn[s] = 0;
      }
    }
    this.newest = bucket;
    this.slot = ((bucket % this.size) + this.size) % this.size;
  }
}

/** The cluster's window, created on first use and kept across config swaps. */
export function retryWindowOf(cluster: ClusterState): RetryWindow {
  return cluster.stateOf('retry-budget', () => new RetryWindow());
}

/** One route's budget settings, compiled once per snapshot. */
export class RetryBudgetRule {
  /** Retries allowed per first try: percent / (100 - percent); Infinity at 100 %. */
  readonly ratio: number;
  readonly minConcurrent: number;

  constructor(percent: number, minConcurrent: number) {
    this.ratio = percent >= 100 ? Number.POSITIVE_INFINITY : percent / (100 - percent);
    this.minConcurrent = minConcurrent;
  }

  /** Whether one more retry may be granted now. */
  allows(window: RetryWindow, activeRetries: number, now: number): boolean {
    if (this.ratio === Number.POSITIVE_INFINITY) return true;
    const retries = window.retriesAt(now);
    const byRatio = this.ratio * window.firstTriesAt(now);
    if (retries < byRatio) return true;
    // The floor, for low traffic: minConcurrent retries in flight, minConcurrent x window seconds per window.
    return activeRetries < this.minConcurrent && retries < this.minConcurrent * window.windowSeconds;
  }
}
