// What one load run counts: every request ends in exactly one class, and successes and
// each kind of failure keep their own latency histogram (hdr-histogram, microseconds).
import * as hdr from 'hdr-histogram-js';

/** Where a request that did not succeed ended. */
export type ErrorClass =
  /** ECONNREFUSED: nothing accepted the connection. */
  | 'refused'
  /** ECONNRESET/EPIPE, or the connection closed before the whole response arrived. */
  | 'reset'
  /** No full response within the client time-out (or never sent within it: open model). */
  | 'timeout'
  /** Any other socket error (EADDRNOTAVAIL, EMFILE, ETIMEDOUT, a malformed response...). */
  | 'socketOther'
  /** 5xx without x-tsmesh-reason: from the application or a proxy that is not tsmesh. */
  | 'http5xx'
  /** 4xx without x-tsmesh-reason. */
  | 'http4xx'
  /** 1xx/3xx final answers: not expected by these scenarios. */
  | 'httpOther';

export const ERROR_CLASSES: readonly ErrorClass[] = ['refused', 'reset', 'timeout', 'socketOther', 'http5xx', 'http4xx', 'httpOther'];

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface RejectionSummary {
  readonly count: number;
  /** Status codes seen with this reason. */
  readonly statuses: Record<string, number>;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface StatsSummary {
  /** Requests that ended in any way (success, error answer, socket error, time-out). */
  readonly requests: number;
  readonly ok: number;
  /** ok / requests, in percent (100 when there were no requests). */
  readonly successPct: number;
  /** Latency of 2xx answers, ms. */
  readonly latencyMs: LatencySummary | null;
  readonly errors: Record<ErrorClass, number> & { readonly total: number };
  /** Latency (ms) of each error class that has one (HTTP answers, resets, refusals). */
  readonly errorLatencyP99Ms: Partial<Record<ErrorClass, number>>;
  /** Answers made by tsmesh itself (x-tsmesh-reason), by reason. Counted in requests, not in errors. */
  readonly tsmesh: Record<string, RejectionSummary>;
  /** Every final status code seen. */
  readonly statuses: Record<string, number>;
  /** Socket error codes behind refused/reset/socketOther. */
  readonly socketErrors: Record<string, number>;
}

function histogram(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

const round = (us: number) => Math.round(us) / 1000;

export function summarise(h: hdr.Histogram): LatencySummary | null {
  if (h.totalCount === 0) return null;
  return {
    count: h.totalCount,
    p50: round(h.getValueAtPercentile(50)),
    p95: round(h.getValueAtPercentile(95)),
    p99: round(h.getValueAtPercentile(99)),
    max: round(h.maxValue),
    mean: round(h.mean),
  };
}

export class Stats {
  private readonly okHist = histogram();
  private readonly errorHists = new Map<ErrorClass, hdr.Histogram>();
  private readonly errors = new Map<ErrorClass, number>();
  private readonly rejections = new Map<string, { hist: hdr.Histogram; statuses: Map<number, number> }>();
  private readonly statuses = new Map<number, number>();
  private readonly socketErrors = new Map<string, number>();
  private requests = 0;
  private ok = 0;

  /** A complete HTTP answer after `latencyMs`. */
  response(status: number, reason: string | undefined, latencyMs: number): void {
    this.requests++;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    const us = Math.max(1, Math.round(latencyMs * 1000));
    if (reason !== undefined) {
      let r = this.rejections.get(reason);
      if (!r) this.rejections.set(reason, (r = { hist: histogram(), statuses: new Map() }));
      r.hist.recordValue(us);
      r.statuses.set(status, (r.statuses.get(status) ?? 0) + 1);
    } else if (status >= 200 && status < 300) {
      this.ok++;
      this.okHist.recordValue(us);
    } else {
      this.error(status >= 500 ? 'http5xx' : status >= 400 ? 'http4xx' : 'httpOther', latencyMs);
      this.requests--; // error() counted it already
    }
  }

  /** A request that ended without a usable answer. */
  error(cls: ErrorClass, latencyMs: number | undefined, code?: string): void {
    this.requests++;
    this.errors.set(cls, (this.errors.get(cls) ?? 0) + 1);
    if (code !== undefined) this.socketErrors.set(code, (this.socketErrors.get(code) ?? 0) + 1);
    if (latencyMs !== undefined && cls !== 'timeout') {
      let h = this.errorHists.get(cls);
      if (!h) this.errorHists.set(cls, (h = histogram()));
      h.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
    }
  }

  counts(): { requests: number; ok: number } {
    return { requests: this.requests, ok: this.ok };
  }

  summary(): StatsSummary {
    const errors = Object.fromEntries(ERROR_CLASSES.map((c) => [c, this.errors.get(c) ?? 0])) as Record<ErrorClass, number>;
    const total = ERROR_CLASSES.reduce((n, c) => n + errors[c], 0);
    const errorLatencyP99Ms: Partial<Record<ErrorClass, number>> = {};
    for (const [c, h] of this.errorHists) errorLatencyP99Ms[c] = round(h.getValueAtPercentile(99));
    const tsmesh: Record<string, RejectionSummary> = {};
    for (const [reason, r] of this.rejections) {
      tsmesh[reason] = {
        count: r.hist.totalCount,
        statuses: Object.fromEntries([...r.statuses].map(([s, n]) => [String(s), n])),
        p50Ms: round(r.hist.getValueAtPercentile(50)),
        p99Ms: round(r.hist.getValueAtPercentile(99)),
      };
    }
    return {
      requests: this.requests,
      ok: this.ok,
      successPct: this.requests === 0 ? 100 : Math.round((this.ok / this.requests) * 10_000) / 100,
      latencyMs: summarise(this.okHist),
      errors: { ...errors, total },
      errorLatencyP99Ms,
      tsmesh,
      statuses: Object.fromEntries([...this.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => [String(s), n])),
      socketErrors: Object.fromEntries(this.socketErrors),
    };
  }

  destroy(): void {
    this.okHist.destroy();
    for (const h of this.errorHists.values()) h.destroy();
    for (const r of this.rejections.values()) r.hist.destroy();
  }
}
