// Vegas, after Netflix concurrency-limits' VegasLimit (TCP Vegas applied to requests): from
// the lowest latency seen (rttNoLoad) and the current one, estimate how many requests are
// queued beyond what the upstream serves without waiting,
//
//   queue = ceil(limit * (1 - rttNoLoad / rtt))
//
// and move the limit by steps of L = log10root(limit): up by 6L while queue <= L, up by L
// while queue < 3L, down by L past 6L, unchanged in between. Every sample updates the limit
// (no window). rttNoLoad is re-probed with the next sample every ~probeMultiplier x limit
// samples (jittered by 0.5-1x) so a baseline that has become unreachable (the upstream got
// slower for good) is forgotten.
//
// Drops (timeouts, 503/504) shrink the limit by L. Unlike Netflix, where a drop's latency can
// still become the new rttNoLoad, a drop is never a latency sample here: a fast 503 from a
// shedding upstream would otherwise set an impossibly low baseline.
import { clamp, log10Root, type LimitAlgorithm } from './limit.js';

export interface VegasOptions {
  initial: number;
  min: number;
  max: number;
  smoothing?: number;
  probeMultiplier?: number;
  /** Uniform [0, 1) source for the probe jitter (tests pass a fixed one). */
  random?: () => number;
}

export class VegasLimit implements LimitAlgorithm {
  limit: number;
  rttNoLoad = 0;

  private readonly min: number;
  private readonly max: number;
  private readonly smoothing: number;
  private readonly probeMultiplier: number;
  private readonly random: () => number;
  private probeCount = 0;
  private probeJitter: number;

  constructor(o: VegasOptions) {
    this.min = o.min;
    this.max = o.max;
    this.limit = clamp(o.initial, o.min, o.max);
    this.smoothing = o.smoothing ?? 1;
    this.probeMultiplier = o.probeMultiplier ?? 30;
    this.random = o.random ?? Math.random;
    this.probeJitter = this.jitter();
  }

  private jitter(): number {
    return 0.5 + 0.5 * this.random();
  }

  onSample(_startTime: number, rttMs: number, inFlight: number, didDrop: boolean): void {
    if (didDrop) {
      this.set(this.limit - log10Root(this.limit));
      return;
    }
    if (!(rttMs > 0)) return;

    this.probeCount++;
    if (this.probeJitter * this.probeMultiplier * this.limit <= this.probeCount) {
      this.probeJitter = this.jitter();
      this.probeCount = 0;
      this.rttNoLoad = rttMs;
      return;
    }
    if (this.rttNoLoad === 0 || rttMs < this.rttNoLoad) {
      this.rttNoLoad = rttMs;
      return;
    }
    // Not using half the slots: the load, not the upstream, is the bottleneck; learn nothing.
    if (inFlight * 2 < this.limit) return;

    const queue = Math.ceil(this.limit * (1 - this.rttNoLoad / rttMs));
    const step = log10Root(this.limit);
    if (queue <= step) this.set(this.limit + 6 * step);
    else if (queue < 3 * step) this.set(this.limit + step);
    else if (queue > 6 * step) this.set(this.limit - step);
  }

  private set(next: number): void {
    const bounded = clamp(next, this.min, this.max);
    this.limit = (1 - this.smoothing) * this.limit + this.smoothing * bounded;
  }
}
