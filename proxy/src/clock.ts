// Time, injectable. Every policy takes time from a Clock so unit tests can drive it with
// FakeClock instead of sleeping; production uses the monotonic system clock.
import { performance } from 'node:perf_hooks';

export type TimerHandle = { cancel(): void };

export interface Clock {
  /** Monotonic milliseconds (fractional); only differences are meaningful. */
  now(): number;
  /** Runs fn once after ms; the handle cancels it. Timers never keep the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** A Node timer as a TimerHandle: one object per timer (no extra closure). */
class SystemTimer implements TimerHandle {
  private readonly t: NodeJS.Timeout;
  constructor(fn: () => void, ms: number) {
    this.t = setTimeout(fn, ms);
    this.t.unref();
  }
  cancel(): void {
    clearTimeout(this.t);
  }
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => new SystemTimer(fn, ms),
};

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that only moves when told to; timers fire in order during advance(). */
export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(start = 1000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Moves time forward by ms, firing due timers in time order (and timers they schedule). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: FakeTimer | undefined;
      for (const t of this.timers) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      if (!next) break;
      this.time = next.at;
      next.cancelled = true;
      next.fn();
    }
    this.time = end;
  }

  /** Advances time and lets promise continuations run between timer firings. */
  async tick(ms: number, step = ms): Promise<void> {
    const end = this.time + ms;
    while (this.time < end) {
      this.advance(Math.min(step, end - this.time));
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
  }

  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
