// The two load models, on raw keep-alive sockets:
// - closed: N virtual users, each one connection sending requests in a loop (like k6 VUs);
// - open: a fixed arrival rate over a bounded set of connections. Latency counts from the
//   intended send time, so a slow server cannot slow the clock that measures it (no
//   coordinated omission): requests that wait for a free connection wait on the record.
// Both stop by themselves after `durationMs` (or `maxRequests`), let requests in flight end
// (at most the client time-out) and close every connection.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Connection, type ConnectionEvents } from './connection.js';
import type { ParsedResponse } from './response-parser.js';
import { Stats, type ErrorClass, type StatsSummary } from './stats.js';

export interface RequestSpec {
  readonly method?: string;
  /** Path and query, e.g. /query */
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The body of request number `seq` (0-based, across the run); undefined for none. */
  readonly body?: (seq: number) => string | undefined;
}

interface CommonOptions {
  /** http://host:port (a path here is the default request path). */
  readonly url: string;
  readonly request?: RequestSpec;
  /** Length of the measured window. */
  readonly durationMs: number;
  /** Stop issuing after this many requests. */
  readonly maxRequests?: number;
  /** Client time-out per request, like k6's (default 10 s). */
  readonly timeoutMs?: number;
}

export interface ClosedOptions extends CommonOptions {
  readonly model: 'closed';
  readonly users: number;
  /** Pause between a response and the user's next request. */
  readonly thinkTimeMs?: number;
  /** Pause after a socket failure (refused, reset, time-out) before the next request (default 100 ms: keeps a refusing server from spinning the client). */
  readonly errorBackoffMs?: number;
  /**
   * Pause after an error answer (status >= 400, tsmesh's own 503/429 included) before the next
   * request (default 0: k6 counts such answers as failed and goes on at once).
   */
  readonly errorAnswerBackoffMs?: number;
  /** Spread the users' first requests over this long (default: all at once, like `k6 --vus`). */
  readonly rampUpMs?: number;
  /**
   * Run this long before the measured window, on the same connections, without recording
   * (default 0). The window then measures users that are connected already: a fresh run's
   * first requests also wait for their connections to be accepted.
   */
  readonly warmupMs?: number;
}

export interface OpenOptions extends CommonOptions {
  readonly model: 'open';
  /** Requests per second. */
  readonly rate: number;
  /** Upper bound on connections; requests beyond wait for one (on the record). */
  readonly maxConnections?: number;
}

export type LoadOptions = ClosedOptions | OpenOptions;

export interface LoadResult extends StatsSummary {
  readonly model: 'closed' | 'open';
  readonly url: string;
  readonly users?: number;
  readonly rate?: number;
  readonly durationMs: number;
  /** From the first request to the last one ending (the window plus the drain). */
  readonly elapsedMs: number;
  /** Requests that ended within the window, per second of the window. */
  readonly rps: number;
  /** 2xx answers within the window, per second of the window. */
  readonly okRps: number;
  readonly connections: { readonly opened: number; readonly maxOpen: number };
  /** Open model: requests sent later than intended because no connection was free. */
  readonly open?: { readonly intended: number; readonly sentLate: number; readonly maxBacklog: number; readonly expiredUnsent: number };
  /** CPU the load generator itself used, ms. */
  readonly cpuMs: { readonly user: number; readonly system: number };
  /**
   * p99 of the load generator's own event-loop delay over the run, ms: a response that arrived
   * while its loop was busy is timed that much late, so latencies below this are not the server's.
   */
  readonly loopDelayP99Ms: number;
  /** The longest stall of the load generator's event loop, ms (one stall delays every response that arrived meanwhile). */
  readonly loopDelayMaxMs: number;
}

interface Target {
  host: string;
  port: number;
  build: (seq: number) => string;
  noBody: boolean;
}

function target(opts: LoadOptions): Target {
  const u = new URL(opts.url);
  if (u.protocol !== 'http:') throw new Error(`only http:// targets are supported (got ${u.protocol})`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 80);
  const spec = opts.request ?? {};
  const method = (spec.method ?? 'GET').toUpperCase();
  const path = spec.path ?? `${u.pathname}${u.search}`;
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\n`;
  for (const [k, v] of Object.entries(spec.headers ?? {})) head += `${k}: ${v}\r\n`;
  const bodyOf = spec.body;
  const build = bodyOf
    ? (seq: number) => {
        const b = bodyOf(seq);
        return b === undefined ? `${head}\r\n` : `${head}Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
      }
    : () => `${head}\r\n`;
  return { host, port, build, noBody: method === 'HEAD' };
}

function validate(opts: LoadOptions): void {
  const positive = (name: string, v: number | undefined, allowZero = false) => {
    if (v === undefined) return;
    if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new Error(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number (got ${v})`);
  };
  positive('durationMs', opts.durationMs);
  positive('timeoutMs', opts.timeoutMs);
  positive('maxRequests', opts.maxRequests);
  if (opts.model === 'closed') {
    if (!Number.isInteger(opts.users) || opts.users < 1) throw new Error(`users must be a positive integer (got ${opts.users})`);
    positive('thinkTimeMs', opts.thinkTimeMs, true);
    positive('errorBackoffMs', opts.errorBackoffMs, true);
    positive('errorAnswerBackoffMs', opts.errorAnswerBackoffMs, true);
    positive('rampUpMs', opts.rampUpMs, true);
    positive('warmupMs', opts.warmupMs, true);
  } else {
    positive('rate', opts.rate);
    if (opts.maxConnections !== undefined && (!Number.isInteger(opts.maxConnections) || opts.maxConnections < 1)) {
      throw new Error(`maxConnections must be a positive integer (got ${opts.maxConnections})`);
    }
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  validate(opts);
  return opts.model === 'closed' ? runClosed(opts) : runOpen(opts);
}

/** Shared bookkeeping of both models: time-outs, connection counts, the end of the run. */
abstract class Run implements ConnectionEvents {
  protected stats = new Stats();
  protected readonly t: Target;
  protected readonly timeoutMs: number;
  protected readonly conns = new Set<Connection>();
  protected seq = 0;
  protected start = 0;
  protected stopIssuing = false;
  private opened = 0;
  private openNow = 0;
  private maxOpen = 0;
  private windowCounts: { requests: number; ok: number } | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private endTimer: NodeJS.Timeout | undefined;
  private finished: (() => void) | undefined;
  private cpu0 = process.cpuUsage();
  /** Requests issued before this time (the warm-up) are not recorded. */
  protected recordFrom = 0;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 1 });

  constructor(protected readonly opts: LoadOptions) {
    this.t = target(opts);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  abstract onResponse(conn: Connection, r: ParsedResponse): void;
  abstract onFailure(conn: Connection, cls: ErrorClass, code: string): void;
  protected abstract begin(): void;
  /** Nothing in flight and nothing waiting: the run may end once issuing stopped. */
  protected abstract idle(): boolean;
  protected abstract sweepExtra(now: number): void;

  protected newConnection(tag: number): Connection {
    const c = new Connection(this.t.host, this.t.port, this);
    c.tag = tag;
    this.conns.add(c);
    return c;
  }

  protected send(c: Connection, seq: number, now: number): void {
    c.send(this.t.build(seq), this.t.noBody, now);
  }

  socketOpened(): void {
    this.opened++;
    if (++this.openNow > this.maxOpen) this.maxOpen = this.openNow;
  }

  socketClosed(): void {
    this.openNow--;
  }

  protected endWindow(): void {
    if (this.windowCounts) return;
    this.stopIssuing = true;
    this.windowCounts = this.stats.counts();
  }

  protected canIssue(): boolean {
    if (this.stopIssuing) return false;
    if (this.opts.maxRequests !== undefined && this.seq >= this.opts.maxRequests) {
      this.stopIssuing = true;
      return false;
    }
    return true;
  }

  protected maybeFinish(): void {
    if (this.stopIssuing && this.idle()) this.finished?.();
  }

  async run(): Promise<LoadResult> {
    this.start = performance.now();
    this.loopDelay.enable();
    const warmupMs = this.opts.model === 'closed' ? (this.opts.warmupMs ?? 0) : 0;
    this.recordFrom = this.start + warmupMs;
    const warmupTimer =
      warmupMs > 0
        ? setTimeout(() => {
            this.stats.destroy();
            this.stats = new Stats();
            this.loopDelay.reset();
            this.cpu0 = process.cpuUsage();
          }, warmupMs)
        : undefined;
    const sweepEvery = Math.max(10, Math.min(250, this.timeoutMs / 4));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const c of this.conns) if (c.busy && now - c.sentAt > this.timeoutMs) c.timeOut();
      this.sweepExtra(now);
      this.maybeFinish();
    }, sweepEvery);
    const done = new Promise<void>((ok) => (this.finished = ok));
    this.endTimer = setTimeout(() => {
      this.endWindow();
      this.maybeFinish();
    }, warmupMs + this.opts.durationMs);
    this.begin();
    await done;
    const elapsedMs = performance.now() - this.recordFrom;
    // Ended early (maxRequests): the window is what it took.
    const windowMs = this.windowCounts ? this.opts.durationMs : elapsedMs;
    this.endWindow();
    clearInterval(this.sweeper);
    clearTimeout(this.endTimer);
    clearTimeout(warmupTimer);
    for (const c of this.conns) c.close();
    const cpu = process.cpuUsage(this.cpu0);
    this.loopDelay.disable();
    const s = this.stats.summary();
    this.stats.destroy();
    const secs = windowMs / 1000;
    const w = this.windowCounts!;
    return {
      model: this.opts.model,
      url: this.opts.url,
      ...(this.opts.model === 'closed' ? { users: this.opts.users } : { rate: this.opts.rate }),
      durationMs: this.opts.durationMs,
      elapsedMs: Math.round(elapsedMs),
      ...s,
      rps: Math.round((w.requests / secs) * 10) / 10,
      okRps: Math.round((w.ok / secs) * 10) / 10,
      connections: { opened: this.opened, maxOpen: this.maxOpen },
      ...this.extraResult(),
      cpuMs: { user: Math.round(cpu.user / 1000), system: Math.round(cpu.system / 1000) },
      loopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e4) / 100,
      loopDelayMaxMs: Math.round(this.loopDelay.max / 1e4) / 100,
    };
  }

  protected extraResult(): Partial<LoadResult> {
    return {};
  }
}

class ClosedRun extends Run {
  private readonly o: ClosedOptions;
  /** When each user's request in flight was issued (connect included). */
  private readonly issuedAt: Float64Array;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly users: Connection[] = [];

  constructor(o: ClosedOptions) {
    super(o);
    this.o = o;
    this.issuedAt = new Float64Array(o.users);
  }

  protected begin(): void {
    const ramp = this.o.rampUpMs ?? 0;
    for (let i = 0; i < this.o.users; i++) {
      const c = this.newConnection(i);
      this.users.push(c);
      if (ramp > 0) this.later(c, (ramp * i) / this.o.users);
      else this.next(c);
    }
  }

  private next(c: Connection): void {
    if (!this.canIssue()) {
      this.maybeFinish();
      return;
    }
    const now = performance.now();
    this.issuedAt[c.tag] = now;
    this.send(c, this.seq++, now);
  }

  private later(c: Connection, ms: number): void {
    if (ms <= 0) {
      this.next(c);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.next(c);
    }, ms);
    this.timers.add(t);
  }

  onResponse(c: Connection, r: ParsedResponse): void {
    const issued = this.issuedAt[c.tag]!;
    if (issued >= this.recordFrom) this.stats.response(r.status, r.reason, performance.now() - issued);
    this.later(c, r.status >= 400 ? Math.max(this.o.errorAnswerBackoffMs ?? 0, this.o.thinkTimeMs ?? 0) : (this.o.thinkTimeMs ?? 0));
  }

  onFailure(c: Connection, cls: ErrorClass, code: string): void {
    const issued = this.issuedAt[c.tag]!;
    if (issued >= this.recordFrom) this.stats.error(cls, performance.now() - issued, code);
    this.later(c, this.o.errorBackoffMs ?? 100);
  }

  protected idle(): boolean {
    if (this.timers.size > 0) {
      // Think times and back-offs of users that will not issue again.
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
    }
    for (const c of this.users) if (c.busy) return false;
    return true;
  }

  protected sweepExtra(): void {}
}

class OpenRun extends Run {
  private readonly o: OpenOptions;
  private readonly maxConnections: number;
  private readonly idleConns: Connection[] = [];
  private readonly intendedOf = new Map<Connection, number>();
  /** Intended send times of requests waiting for a connection, oldest first. */
  private backlog: number[] = [];
  private backlogHead = 0;
  private ticker: NodeJS.Timeout | undefined;
  private issued = 0;
  private sentLate = 0;
  private maxBacklog = 0;
  private expiredUnsent = 0;

  constructor(o: OpenOptions) {
    super(o);
    this.o = o;
    this.maxConnections = o.maxConnections ?? 1000;
  }

  protected begin(): void {
    // A 1 ms tick issues whatever is due; any lag of the tick itself is on the record,
    // because latency counts from the intended time, not from the tick.
    this.ticker = setInterval(() => this.tick(), 1);
    this.tick();
  }

  private tick(): void {
    const now = performance.now();
    const intervalMs = 1000 / this.o.rate;
    const windowEnd = this.start + this.o.durationMs;
    const max = this.o.maxRequests ?? Number.POSITIVE_INFINITY;
    while (this.canIssue()) {
      // Requests waiting for a connection were issued but not yet sent: maxRequests counts them.
      if (this.issued >= max) {
        this.stopIssuing = true;
        break;
      }
      const intended = this.start + this.issued * intervalMs;
      if (intended > now || intended >= windowEnd) break;
      this.issued++;
      this.dispatch(intended, now);
    }
    if (this.stopIssuing || now >= windowEnd) {
      if (now >= windowEnd) this.endWindow();
      this.stopIssuing = true;
      clearInterval(this.ticker);
      this.maybeFinish();
    }
  }

  private dispatch(intended: number, now: number): void {
    let c = this.idleConns.pop();
    if (!c && this.conns.size < this.maxConnections) c = this.newConnection(0);
    if (!c) {
      this.backlog.push(intended);
      const waiting = this.backlog.length - this.backlogHead;
      if (waiting > this.maxBacklog) this.maxBacklog = waiting;
      return;
    }
    this.sendAt(c, intended, now);
  }

  private sendAt(c: Connection, intended: number, now: number): void {
    if (now - intended > 1) this.sentLate++;
    this.intendedOf.set(c, intended);
    // The time-out also counts from the intended time.
    this.send(c, this.seq++, intended);
  }

  private release(c: Connection): void {
    this.intendedOf.delete(c);
    const now = performance.now();
    if (this.backlogHead < this.backlog.length) {
      const intended = this.backlog[this.backlogHead++]!;
      this.compactBacklog();
      this.sendAt(c, intended, now);
      return;
    }
    this.idleConns.push(c);
    this.maybeFinish();
  }

  private compactBacklog(): void {
    if (this.backlogHead > 4096 && this.backlogHead * 2 > this.backlog.length) {
      this.backlog = this.backlog.slice(this.backlogHead);
      this.backlogHead = 0;
    }
  }

  onResponse(c: Connection, r: ParsedResponse): void {
    this.stats.response(r.status, r.reason, performance.now() - this.intendedOf.get(c)!);
    this.release(c);
  }

  onFailure(c: Connection, cls: ErrorClass, code: string): void {
    this.stats.error(cls, performance.now() - this.intendedOf.get(c)!, code);
    this.release(c);
  }

  protected sweepExtra(now: number): void {
    // Requests still waiting for a connection past the time-out would have timed out anyway.
    while (this.backlogHead < this.backlog.length && now - this.backlog[this.backlogHead]! > this.timeoutMs) {
      this.backlogHead++;
      this.expiredUnsent++;
      this.stats.error('timeout', undefined, 'UNSENT');
    }
    this.compactBacklog();
  }

  protected idle(): boolean {
    return this.intendedOf.size === 0 && this.backlogHead >= this.backlog.length;
  }

  protected override extraResult(): Partial<LoadResult> {
    clearInterval(this.ticker);
    return { open: { intended: this.issued, sentLate: this.sentLate, maxBacklog: this.maxBacklog, expiredUnsent: this.expiredUnsent } };
  }
}

function runClosed(o: ClosedOptions): Promise<LoadResult> {
  return new ClosedRun(o).run();
}

function runOpen(o: OpenOptions): Promise<LoadResult> {
  return new OpenRun(o).run();
}
