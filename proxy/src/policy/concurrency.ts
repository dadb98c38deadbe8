// Per-cluster concurrency limit with a bounded FIFO queue (issue 3, "Adaptive concurrency"):
// admit only the work the upstream can finish in time, queue a little, and answer the rest at
// once with 503 overloaded and Retry-After instead of letting it time out.
//
// - The limit is static (`limit: 64`, a bulkhead like cockatiel's BulkheadPolicy) or adaptive
//   (gradient2 or Vegas, limits/*.ts), learning from every admitted request's latency from
//   admission to the response head, and from drops (a timeout, or a 503/504 answer).
// - Past the limit a request waits in a FIFO queue of at most queue.max requests, for at most
//   queue.timeout and never past its deadline; when it cannot queue, or its wait runs out, it
//   gets 503 overloaded. A client that goes away leaves the queue at once (ctx.cancel).
// - A request is not queued when its wait is predicted to run out: slots free at about
//   limit / (mean time in a slot), so the n-th in line waits about n x that time / limit. It
//   is answered 503 at once instead of after queue.timeout; the queue keeps what it can admit.
// - Rejecting is O(1) and allocates nothing: the answer and its settled promise are built once
//   per snapshot. That is what keeps rejections in microseconds at 10x overload.
// - The state (in-flight count, queue, the algorithm and what it learned) belongs to the cluster
//   and survives config swaps; a new snapshot with the same limit settings keeps the learned
//   limit, other settings start a new estimate but keep the in-flight count and the queue.
// - Gauges (limit, in flight, queue depth) are read at scrape time, not written per request.
import type { Clock, TimerHandle } from '../clock.js';
import type { ConcurrencyConfig } from '../config/schema.js';
import type { ClusterState } from '../upstream/cluster-state.js';
import { Gradient2Limit } from './limits/gradient2.js';
import type { LimitAlgorithm } from './limits/limit.js';
import { StaticLimit } from './limits/static.js';
import { VegasLimit } from './limits/vegas.js';
import type { Outcome, Policy, PolicyBuildContext, RequestContext } from './types.js';
import { localResponse } from './types.js';
import { clusterScrapeHooks } from './scrape-hooks.js';
import { CLIENT_CLOSED } from './wait.js';

export interface ConcurrencyOptions {
  /** Uniform [0, 1) source for Vegas' probe jitter. */
  random?: () => number;
}

type WaitResult = 'admitted' | 'timeout' | 'cancelled';

/** A queued request; linked both ways so a timeout or a cancel leaves the queue in O(1). */
interface Waiter {
  readonly ctx: RequestContext;
  readonly enqueuedAt: number;
  resolve: (r: WaitResult) => void;
  timer: TimerHandle | undefined;
  cancel: (() => void) | undefined;
  prev: Waiter | undefined;
  next: Waiter | undefined;
}

export function createLimitAlgorithm(cfg: ConcurrencyConfig, random?: () => number): LimitAlgorithm {
  const a = cfg.adaptive;
  if (!a) return new StaticLimit(cfg.limit!);
  if (a.algorithm === 'vegas') return new VegasLimit({ initial: a.initial, min: a.min, max: a.max, ...(random ? { random } : {}) });
  return new Gradient2Limit({ initial: a.initial, min: a.min, max: a.max, ...(random ? { random } : {}) });
}

/** Weight of one completed request in the mean time in a slot. */
const SLOT_TIME_WEIGHT = 1 / 32;

/** A cluster's admission state, kept across config swaps (ClusterState.stateOf('concurrency')). */
export class ConcurrencyState {
  inFlight = 0;
  queueLength = 0;
  /** Moving mean of the time admitted requests held a slot, in ms (0: nothing completed yet). */
  slotMs = 0;
  algorithm: LimitAlgorithm;
  private algorithmKey: string;
  private head: Waiter | undefined;
  private tail: Waiter | undefined;

  constructor(cfg: ConcurrencyConfig, random?: () => number) {
    this.algorithm = createLimitAlgorithm(cfg, random);
    this.algorithmKey = limitKey(cfg);
  }

  /** Takes a new snapshot's settings; the learned limit stays unless the limit settings changed. */
  configure(cfg: ConcurrencyConfig, random?: () => number): void {
    const key = limitKey(cfg);
    if (key === this.algorithmKey) return;
    this.algorithm = createLimitAlgorithm(cfg, random);
    this.algorithmKey = key;
    this.admitWaiting();
  }

  get limit(): number {
    return Math.max(1, Math.floor(this.algorithm.limit));
  }

  enqueue(ctx: RequestContext, waitMs: number, clock: Clock): Promise<WaitResult> {
    return new Promise<WaitResult>((resolve) => {
      const w: Waiter = { ctx, enqueuedAt: clock.now(), resolve, timer: undefined, cancel: undefined, prev: this.tail, next: undefined };
      if (this.tail) this.tail.next = w;
      else this.head = w;
      this.tail = w;
      this.queueLength++;
      w.timer = clock.setTimer(() => this.leave(w, 'timeout'), waitMs);
      w.cancel = () => this.leave(w, 'cancelled');
      ctx.cancel = w.cancel;
    });
  }

  /** How long the request at `position` in line (1: next) is expected to wait for a slot, in ms. */
  expectedWaitMs(position: number): number {
    return (this.slotMs * position) / this.limit;
  }

  /**
   * One admitted request is done: free its slot, learn from it, and hand free slots to the queue
   * in order. `held`: whether it ran (then startTime is when it took its slot).
   */
  release(now: number, sample: boolean, startTime: number, inFlightAtStart: number, didDrop: boolean, held = true): void {
    this.inFlight--;
    if (held) {
      const ms = now - startTime;
      this.slotMs = this.slotMs === 0 ? ms : this.slotMs + (ms - this.slotMs) * SLOT_TIME_WEIGHT;
    }
    if (sample) this.algorithm.onSample(startTime, now - startTime, inFlightAtStart, didDrop);
    this.admitWaiting();
  }

  private admitWaiting(): void {
    const limit = this.limit;
    while (this.head && this.inFlight < limit) {
      const w = this.head;
      this.unlink(w);
      this.inFlight++;
      this.settle(w, 'admitted');
    }
  }

  private leave(w: Waiter, result: WaitResult): void {
    if (w.resolve === noop) return;
    this.unlink(w);
    this.settle(w, result);
  }

  private settle(w: Waiter, result: WaitResult): void {
    w.timer?.cancel();
    if (w.ctx.cancel === w.cancel) w.ctx.cancel = undefined;
    const resolve = w.resolve;
    w.resolve = noop;
    resolve(result);
  }

  private unlink(w: Waiter): void {
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = w.next = undefined;
    this.queueLength--;
  }
}

function noop(): void {}

function limitKey(cfg: ConcurrencyConfig): string {
  return JSON.stringify([cfg.limit, cfg.adaptive]);
}

/** The chain's builder: undefined when the cluster sets no concurrency limit. */
export function buildConcurrency(b: PolicyBuildContext): Policy | undefined {
  return createConcurrencyPolicy(b);
}

export function createConcurrencyPolicy(b: PolicyBuildContext, options: ConcurrencyOptions = {}): Policy | undefined {
  const cluster: ClusterState = b.cluster;
  const cfg = cluster.config.concurrency;
  const hooks = clusterScrapeHooks(cluster, b.metrics);
  if (!cfg) {
    // No limit any more: no hook, and no gauges frozen at the last limit's values.
    hooks.set('concurrency', undefined);
    b.metrics.concurrencyLimit.remove(cluster.name);
    b.metrics.concurrencyInFlight.remove(cluster.name);
    b.metrics.concurrencyQueueDepth.remove(cluster.name);
    return undefined;
  }
  const clock = b.clock;
  const state = cluster.stateOf('concurrency', () => new ConcurrencyState(cfg, options.random));
  state.configure(cfg, options.random);

  const queueMax = cfg.queue.max;
  const queueTimeout = cfg.queue.timeout;
  const limitGauge = b.metrics.concurrencyLimit.labels(cluster.name);
  const inFlightGauge = b.metrics.concurrencyInFlight.labels(cluster.name);
  const queueGauge = b.metrics.concurrencyQueueDepth.labels(cluster.name);
  const queueWait = b.metrics.concurrencyQueueWait.labels(cluster.name);
  hooks.set('concurrency', () => {
    limitGauge.set(state.limit);
    inFlightGauge.set(state.inFlight);
    queueGauge.set(state.queueLength);
  });

  const retryAfter = String(Math.max(1, Math.ceil(queueTimeout / 1000)));
  const overloaded = localResponse('overloaded', 503, {
    headers: [['retry-after', retryAfter]],
    detail: `cluster ${cluster.name} is at its concurrency limit`,
  });
  const rejected = Promise.resolve<Outcome>(overloaded);

  return (next) => {
    /** Runs an admitted request (its slot already counted) and learns from its outcome. */
    const run = async (ctx: RequestContext): Promise<Outcome> => {
      const start = clock.now();
      const inFlightAtStart = state.inFlight;
      let outcome: Outcome | undefined;
      try {
        outcome = await next(ctx);
        return outcome;
      } finally {
        let sample = false;
        let drop = false;
        if (outcome && !ctx.aborted) {
          if (outcome.kind === 'upstream') {
            sample = true;
            drop = outcome.status === 503 || outcome.status === 504;
          } else if (outcome.reason === 'upstream_timeout') {
            sample = drop = true;
          }
        }
        state.release(clock.now(), sample, start, inFlightAtStart, drop);
      }
    };

    const queued = async (ctx: RequestContext, waitMs: number): Promise<Outcome> => {
      const enqueuedAt = clock.now();
      const result = await state.enqueue(ctx, waitMs, clock);
      queueWait.observe((clock.now() - enqueuedAt) / 1000);
      if (result === 'admitted') {
        if (!ctx.aborted) return run(ctx);
        state.release(clock.now(), false, 0, 0, false, false);
        ctx.reason = 'client_closed';
        return CLIENT_CLOSED;
      }
      if (result === 'cancelled') {
        ctx.reason = 'client_closed';
        return CLIENT_CLOSED;
      }
      ctx.reason = 'overloaded';
      return overloaded;
    };

    return (ctx) => {
      if (state.queueLength === 0 && state.inFlight < state.limit) {
        state.inFlight++;
        return run(ctx);
      }
      if (state.queueLength < queueMax && !ctx.aborted) {
        const waitMs = Math.min(queueTimeout, ctx.deadline - clock.now());
        if (waitMs > 0 && state.expectedWaitMs(state.queueLength + 1) <= waitMs) return queued(ctx, waitMs);
      }
      ctx.reason = 'overloaded';
      return rejected;
    };
  };
}
