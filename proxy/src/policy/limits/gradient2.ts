// Gradient2, after Netflix concurrency-limits' Gradient2Limit (behind its WindowedLimit), the
// algorithm Envoy's adaptive concurrency filter also follows (a gradient of a baseline latency
// over the current one, times the limit, plus headroom):
//
//   gradient = clamp(tolerance * longRtt / shortRtt, 0.5, 1)     (tolerance 1.25)
//   newLimit = limit * gradient + queueSize
//   limit    = clamp(limit * (1 - smoothing) + newLimit * smoothing, min, max)
//
// shortRtt is the average latency of one sample window (at least `windowSize` samples and
// 2 x the window's minimum latency, between minWindowMs and maxWindowMs); longRtt is an
// exponential average of those over `longWindow` windows, the baseline that lags when latency
// rises, so the gradient falls below 1 and the limit shrinks toward what the upstream finishes
// without queueing. When latency recovers, longRtt is pulled down faster (x0.95 per window
// while it is over 2 x shortRtt). The limit does not move while fewer than half its slots are
// used (the load, not the upstream, is the bottleneck then).
//
// The baseline is re-measured now and then (our addition, after Envoy's adaptive concurrency
// filter, which re-measures its minimum RTT every 60 s at a low concurrency): longRtt follows
// the short one, so over a long overload it creeps up with the queueing it should detect, the
// gradient returns to 1 and the limit grows again (in a bench:overload run the limit settled at
// 72-77 for an upstream of 50 instead of tolerance x 50 + 4 = 66). Every probeIntervalMs (30 s,
// +-10 % jitter) while the limit binds, a probe halves the limit, waits for the requests admitted
// before it to finish (one short RTT), averages the next windowSize latencies, which then met an
// upstream without a queue if half the limit is below its capacity, and takes that as the new
// baseline, held while the limit binds until the next probe (windows of a binding limit no longer
// feed the average; windows of light load still do). That also follows an upstream that really
// became slower within one interval, where Netflix's average takes minutes. It costs about two
// round trips at half the limit every 30 s.
//
// Unlike Netflix's Gradient2 (which ignores drops), a window that lost more than one and more
// than dropThreshold (5 %) of its requests to drops (timeouts, 503/504) cuts the limit by
// backoffRatio (0.9, as their GradientLimit and AIMDLimit do): an overloaded upstream that
// sheds answers 503 fast, so latency alone would read shedding as health. Below the threshold
// drops are background errors (a flaky endpoint, what retries absorb) and only leave the
// latency average; cutting on every one would walk the limit down to its minimum.
import { clamp, type LimitAlgorithm } from './limit.js';

export interface Gradient2Options {
  initial: number;
  min: number;
  max: number;
  smoothing?: number;
  rttTolerance?: number;
  longWindow?: number;
  /** Headroom the limit may grow by per window while latency stays at its baseline. */
  queueSize?: (limit: number) => number;
  backoffRatio?: number;
  /** Fraction of a window's requests that must be drops before the limit is cut. */
  dropThreshold?: number;
  windowSize?: number;
  minWindowMs?: number;
  maxWindowMs?: number;
  /** How often the baseline is re-measured at half the limit while the limit binds (0: never). */
  probeIntervalMs?: number;
  /** Jitter of the probe interval (tests pass their own). */
  random?: () => number;
}

interface Probe {
  /** The limit before the probe, restored after it. */
  readonly saved: number;
  /** Samples of requests admitted from this time on met the upstream at the probe's concurrency. */
  readonly cleanFrom: number;
  /** A probe without enough clean samples by then (traffic gone, or all drops) is given up. */
  readonly giveUpAt: number;
  sum: number;
  count: number;
}

/** Exponential moving average with a plain-average warm-up (Netflix's ExpAvgMeasurement). */
class ExpAverage {
  value = 0;
  private count = 0;

  constructor(
    private readonly window: number,
    private readonly warmup: number,
  ) {}

  add(sample: number): number {
    if (this.count < this.warmup) {
      this.count++;
      this.value += (sample - this.value) / this.count;
    } else {
      const f = 2 / (this.window + 1);
      this.value = this.value * (1 - f) + sample * f;
    }
    return this.value;
  }
}

export class Gradient2Limit implements LimitAlgorithm {
  limit: number;
  /** The baseline latency (ms), exposed for tests and debugging. */
  get longRtt(): number {
    return this.long.value;
  }
  lastShortRtt = 0;

  private readonly min: number;
  private readonly max: number;
  private readonly smoothing: number;
  private readonly tolerance: number;
  private readonly queueSize: (limit: number) => number;
  private readonly backoffRatio: number;
  private readonly dropThreshold: number;
  private readonly windowSize: number;
  private readonly minWindowMs: number;
  private readonly maxWindowMs: number;
  private readonly long: ExpAverage;
  private readonly probeIntervalMs: number;
  private readonly random: () => number;
  private probe: Probe | undefined;
  private nextProbe = 0;
  /** The last window used at least half the limit: the limit binds, so queueing can build up. */
  private binding = false;
  /** Probes that re-measured the baseline (for tests and debugging). */
  probes = 0;

  // The open sample window.
  private nextUpdate = 0;
  private count = 0;
  private countRtt = 0;
  private sum = 0;
  private minRtt = Infinity;
  private maxInFlight = 0;
  private drops = 0;

  constructor(o: Gradient2Options) {
    this.min = o.min;
    this.max = o.max;
    this.limit = clamp(o.initial, o.min, o.max);
    this.smoothing = o.smoothing ?? 0.2;
    // Netflix's default is 1.5; 1.25 is Envoy's (min_rtt buffer 25 %). Past the upstream's
    // capacity C the limit settles near tolerance x C + queueSize, so latency settles near
    // tolerance + queueSize / C times the baseline: 1.9x at 1.5 for C = 10, 1.65x at 1.25.
    this.tolerance = o.rttTolerance ?? 1.25;
    this.queueSize = o.queueSize ?? (() => 4);
    this.backoffRatio = o.backoffRatio ?? 0.9;
    this.dropThreshold = o.dropThreshold ?? 0.05;
    this.windowSize = o.windowSize ?? 10;
    this.minWindowMs = o.minWindowMs ?? 100;
    this.maxWindowMs = o.maxWindowMs ?? 1000;
    this.long = new ExpAverage(o.longWindow ?? 600, 10);
    this.probeIntervalMs = o.probeIntervalMs ?? 30_000;
    this.random = o.random ?? Math.random;
  }

  onSample(startTime: number, rttMs: number, inFlight: number, didDrop: boolean): void {
    const end = startTime + rttMs;
    if (this.probe) {
      this.onProbeSample(startTime, rttMs, didDrop, end);
      return;
    }
    if (this.probeIntervalMs > 0) {
      if (this.nextProbe === 0) this.nextProbe = end + this.probeInterval();
      else if (end >= this.nextProbe) {
        if (this.binding) {
          this.startProbe(end);
          return;
        }
        // Not under load: the latencies seen are the baseline already.
        this.nextProbe = end + this.probeInterval();
      }
    }
    if (didDrop) {
      this.drops++;
    } else {
      this.sum += rttMs;
      this.countRtt++;
    }
    // Drops count for the window's length (how fast answers come), not for its latency.
    if (rttMs < this.minRtt) this.minRtt = rttMs;
    this.count++;
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight;

    if (end <= this.nextUpdate || this.count < this.windowSize) return;
    this.nextUpdate = end + clamp(2 * this.minRtt, this.minWindowMs, this.maxWindowMs);
    this.update();
  }

  private probeInterval(): number {
    return this.probeIntervalMs * (0.9 + 0.2 * this.random());
  }

  private resetWindow(): void {
    this.count = 0;
    this.countRtt = 0;
    this.sum = 0;
    this.minRtt = Infinity;
    this.maxInFlight = 0;
    this.drops = 0;
  }

  private startProbe(now: number): void {
    const rtt = Math.max(this.lastShortRtt, this.long.value);
    this.probe = { saved: this.limit, cleanFrom: now + rtt, giveUpAt: now + rtt + 5 * this.maxWindowMs, sum: 0, count: 0 };
    this.limit = Math.max(this.min, Math.round(this.limit / 2));
    this.resetWindow();
  }

  private onProbeSample(startTime: number, rttMs: number, didDrop: boolean, end: number): void {
    const p = this.probe!;
    if (startTime >= p.cleanFrom && !didDrop) {
      p.sum += rttMs;
      p.count++;
    }
    const done = p.count >= this.windowSize;
    if (!done && end < p.giveUpAt) return;
    if (done) {
      this.long.value = p.sum / p.count;
      this.probes++;
    }
    this.limit = p.saved;
    this.probe = undefined;
    this.nextProbe = end + this.probeInterval();
    this.nextUpdate = end;
  }

  private update(): void {
    const dropped = this.drops > 1 && this.drops > this.dropThreshold * this.count;
    const short = this.countRtt > 0 ? this.sum / this.countRtt : 0;
    this.binding = this.maxInFlight >= this.limit / 2;
    this.resetWindow();

    if (dropped) {
      this.limit = Math.max(this.min, this.limit * this.backoffRatio);
      return;
    }
    if (short <= 0) return;
    this.lastShortRtt = short;
    // While the limit binds, latency includes the queueing the gradient is there to detect: once
    // a probe has measured the baseline, it holds until the next probe (as Envoy's minRTT does).
    const long = this.binding && this.probes > 0 ? this.long.value : this.long.add(short);
    if (long / short > 2) this.long.value *= 0.95;
    if (!this.binding) return;
    const gradient = clamp((this.tolerance * long) / short, 0.5, 1);
    const next = this.limit * gradient + this.queueSize(this.limit);
    this.limit = clamp(this.limit * (1 - this.smoothing) + next * this.smoothing, this.min, this.max);
  }
}
