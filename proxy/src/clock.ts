// Time, injectable. Every policy takes time from a Clock so unit tests can drive it with
// FakeClock instead of sleeping; production uses the monotonic system clock.
import { performance } from 'node:perf_hooks';

/** The longest delay setTimeout accepts. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export type TimerHandle = { cancel(): void };

export interface Clock {
  /** Monotonic milliseconds (fractional); only differences are meaningful. */
  now(): number;
  /**
   * Runs fn once after ms; the handle cancels it. Timers never keep the process alive.
   * `now`, when the caller has just read the clock, spares a second reading.
   */
  setTimer(fn: () => void, ms: number, now?: number): TimerHandle;
}

// The request path sets a timer per upstream attempt (its deadline) and per new upstream
// connection, and cancels nearly all of them before they fire. A Node Timeout per timer costs
// two objects (~170 bytes with its async-hook ids, measured with a sampling heap profile) and
// three calls into C++ (a libuv clock read, and for an unref'd timer two toggles of the loop's
// reference count). Here a timer is one small list entry: one list per duration (entries of a
// list expire in the order they were added, since `now` only grows), O(1) cancel, and one
// unref'd Node timer armed for the earliest expiry. Timers keep Node's millisecond granularity
// (a duration is rounded up to whole milliseconds, at least 1).
class TimerEntry implements TimerHandle {
  prev: TimerEntry | undefined = undefined;
  next: TimerEntry | undefined = undefined;
  /** Null once fired or cancelled. */
  list: TimerList | null;
  constructor(
    list: TimerList,
    readonly at: number,
    readonly fn: () => void,
  ) {
    this.list = list;
  }
  cancel(): void {
    const list = this.list;
    if (list !== null) list.remove(this);
  }
}

class TimerList {
  head: TimerEntry | undefined = undefined;
  tail: TimerEntry | undefined = undefined;
  constructor(readonly ms: number) {}
  append(e: TimerEntry): void {
    const tail = this.tail;
    if (tail === undefined) this.head = e;
    else {
      tail.next = e;
      e.prev = tail;
    }
    this.tail = e;
  }
  remove(e: TimerEntry): void {
    const prev = e.prev;
    const next = e.next;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    e.prev = e.next = undefined;
    e.list = null;
  }
}

class TimerQueue {
  private readonly lists = new Map<number, TimerList>();
  private last: TimerList | undefined;
  private node: NodeJS.Timeout | undefined;
  private armedAt = Infinity;

  set(fn: () => void, ms: number, now: number): TimerHandle {
    // At least 1 ms, as with setTimeout: a timer set from a timer callback fires on a later turn.
    const d = ms > 1 ? Math.ceil(ms) : 1;
    let list = this.last;
    if (list === undefined || list.ms !== d) {
      list = this.lists.get(d);
      if (list === undefined) {
        list = new TimerList(d);
        this.lists.set(d, list);
      }
      this.last = list;
    }
    const at = now + d;
    const e = new TimerEntry(list, at, fn);
    list.append(e);
    if (at < this.armedAt) this.arm(at, at - d);
    return e;
  }

  private arm(at: number, now: number): void {
    if (this.node !== undefined) clearTimeout(this.node);
    this.armedAt = at;
    // setTimeout takes at most 2^31-1 ms (it fires after 1 ms beyond that); fire() re-arms for the rest.
    this.node = setTimeout(this.fire, Math.min(MAX_TIMEOUT_MS, Math.max(1, Math.ceil(at - now))));
    this.node.unref();
  }

  private readonly fire = (): void => {
    this.node = undefined;
    this.armedAt = Infinity;
    // libuv's clock is in whole milliseconds: an entry due within the next one is due now.
    const due = performance.now() + 1;
    try {
      // Earliest deadline first across the lists: after a late wake-up (a GC pause, a busy
      // core) several lists have entries due, and a 10 ms timer must still fire before a
      // 40 ms one set at the same time. A timer set by fn is due later than `due`.
      for (;;) {
        let first: TimerEntry | undefined;
        for (const list of this.lists.values()) {
          const h = list.head;
          if (h !== undefined && h.at < due && (first === undefined || h.at < first.at)) first = h;
        }
        if (first === undefined) break;
        first.list!.remove(first);
        first.fn();
      }
    } finally {
      let next = Infinity;
      for (const [d, list] of this.lists) {
        const h = list.head;
        if (h === undefined) {
          this.lists.delete(d);
          if (this.last === list) this.last = undefined;
        } else if (h.at < next) next = h.at;
      }
      if (next < this.armedAt) this.arm(next, performance.now());
    }
  };
}

const timers = new TimerQueue();

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms, now) => timers.set(fn, ms, now ?? performance.now()),
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
