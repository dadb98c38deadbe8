// What the concurrency policy asks of a limit algorithm: the current limit, and one sample per
// finished request (Netflix concurrency-limits' `Limit.onSample`). Times are clock
// milliseconds.
export interface LimitAlgorithm {
  /** Current limit; admission compares the in-flight count with its integer part (at least 1). */
  readonly limit: number;
  /**
   * One request finished. startTime: when it was admitted; rttMs: admission to response head;
   * inFlight: requests holding a slot when it was admitted (itself included); didDrop: it was
   * lost to overload (timed out, or answered 503/504), which the algorithm reads as congestion.
   */
  onSample(startTime: number, rttMs: number, inFlight: number, didDrop: boolean): void;
}

/** Netflix's Log10RootFunction: max(1, floor(log10(n))), the step Vegas grows and shrinks by. */
export function log10Root(n: number): number {
  return n < 100 ? 1 : Math.floor(Math.log10(n));
}

export function clamp(v: number, min: number, max: number): number {
  return v < min ? min : v > max ? max : v;
}
