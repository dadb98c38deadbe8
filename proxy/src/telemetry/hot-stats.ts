// Request-path counters kept as plain numbers and pushed into the prom-client registry when it
// is read. prom-client hashes its label set on every inc()/set(), even on a bound child (about
// 0.3 µs each, measured); a request touches several counters, so the hot path adds to fields
// here instead and `flush` moves the deltas into the registry on every scrape (it is called
// from the metrics' `collect` hooks, so any reader of the registry sees current values).
import type { Histogram } from 'prom-client';
import { REASONS, type Reason } from '../reasons.js';
import { NO_REASON, type ProxyMetrics } from './metrics.js';

/** prom-client's per-label-set histogram record (what its own observe() updates). */
interface HistogramEntry {
  labels: Record<string, string>;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

interface HistogramInternals {
  hashMap: Record<string, HistogramEntry>;
  upperBounds: number[];
  zero(labels: Record<string, string>): void;
}

/**
 * A histogram child that counts locally and adds its counts to the prom-client histogram when
 * the registry is read (prom-client's observe() hashes the label set each time: ~0.3 µs, the
 * largest single cost of the request path's own code, measured with bench:hotpath). It writes
 * the same record prom-client's observe() writes; if that record is not found as expected
 * (another prom-client version), it falls back to observe() per value.
 */
export class HistogramCell {
  /**
   * The bucket bounds, copied: prom-client freezes its own array, and V8 (Node 20) reads a frozen
   * array's elements through its generic keyed-load builtin, not inline (bench:hotpath under
   * cachegrind: ~400 instructions per observe, two observes per request, gone with this copy).
   */
  private readonly bounds: Float64Array;
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;
  private entry: HistogramEntry | undefined;
  private entryMap: unknown;
  private readonly direct: { observe(v: number): void } | undefined;

  constructor(
    private readonly metric: Histogram<string>,
    private readonly labels: Record<string, string>,
  ) {
    const internals = metric as unknown as Partial<HistogramInternals>;
    if (Array.isArray(internals.upperBounds) && typeof internals.hashMap === 'object' && typeof internals.zero === 'function') {
      this.bounds = Float64Array.from(internals.upperBounds);
    } else {
      this.bounds = new Float64Array(0);
      this.direct = metric.labels(labels);
    }
    this.counts = new Float64Array(this.bounds.length + 1);
  }

  observe(value: number): void {
    if (this.direct) {
      this.direct.observe(value);
      return;
    }
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  flush(): void {
    if (this.count === 0 || this.direct) return;
    const h = this.metric as unknown as HistogramInternals;
    if (this.entry === undefined || this.entryMap !== h.hashMap) {
      this.entry = this.findEntry(h);
      this.entryMap = h.hashMap;
    }
    const e = this.entry;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      const n = this.counts[i]!;
      if (n > 0) e.bucketValues[b[i]!] = (e.bucketValues[b[i]!] ?? 0) + n;
      this.counts[i] = 0;
    }
    this.counts[b.length] = 0;
    e.sum += this.sum;
    e.count += this.count;
    this.sum = 0;
    this.count = 0;
  }

  private findEntry(h: HistogramInternals): HistogramEntry {
    const names = Object.keys(this.labels);
    const match = (e: HistogramEntry) => names.every((n) => e.labels[n] === this.labels[n]);
    let e = Object.values(h.hashMap).find(match);
    if (!e) {
      h.zero({ ...this.labels });
      e = Object.values(h.hashMap).find(match)!;
    }
    return e;
  }
}

/** Reason index used as part of a count key: 0 = none (an upstream answer). */
export function reasonIndex(reason: Reason | undefined): number {
  return reason === undefined ? 0 : REASONS.indexOf(reason) + 1;
}

/**
 * Counts by key, with the key of the last run counted in two fields: a run of one outcome (the
 * usual case: one status code after another) costs no Map lookup. `drain` hands over and resets.
 */
class RunCounts<K> {
  private readonly map = new Map<K, number>();
  private runKey: K | undefined = undefined;
  private run = 0;

  add(key: K): void {
    if (key === this.runKey) {
      this.run++;
      return;
    }
    this.endRun();
    this.runKey = key;
    this.run = 1;
  }

  drain(each: (key: K, n: number) => void): void {
    this.endRun();
    this.runKey = undefined;
    for (const [key, n] of this.map) each(key, n);
    this.map.clear();
  }

  private endRun(): void {
    if (this.run > 0) this.map.set(this.runKey!, (this.map.get(this.runKey!) ?? 0) + this.run);
    this.run = 0;
  }
}

export class RouteStats {
  /** Responses by status * 32 + reason index. */
  readonly counts = new RunCounts<number>();
  requestBytes = 0;
  responseBytes = 0;
  readonly duration: HistogramCell;

  constructor(
    readonly listener: string,
    readonly route: string,
    readonly cluster: string,
    duration: HistogramCell,
  ) {
    this.duration = duration;
  }

  record(status: number, reason: Reason | undefined, seconds: number): void {
    this.counts.add(status * 32 + reasonIndex(reason));
    this.duration.observe(seconds);
  }
}

/** Attempts per endpoint by result (a status code, or a reason for failures). */
export class EndpointStats {
  readonly counts = new RunCounts<number | string>();
  constructor(
    readonly cluster: string,
    readonly endpoint: string,
  ) {}

  record(code: number | string): void {
    this.counts.add(code);
  }
}

export class HotStats {
  private readonly routes = new Map<string, RouteStats>();
  private readonly endpoints = new Map<string, EndpointStats>();
  /** Gauges computed at scrape time (active requests, connections by state). */
  private readonly gauges: Array<() => void> = [];
  private readonly histograms = new Map<string, HistogramCell>();
  private flushing = false;

  constructor(private readonly metrics: ProxyMetrics) {
    const flush = () => this.flush();
    for (const m of [
      metrics.requests,
      metrics.requestBytes,
      metrics.responseBytes,
      metrics.upstreamAttempts,
      metrics.activeRequests,
      metrics.downstreamConnections,
      metrics.upstreamConnections,
      metrics.requestDuration,
      metrics.upstreamAttemptDuration,
    ]) {
      (m as unknown as { collect: () => void }).collect = flush;
    }
  }

  /** A histogram child bound once (per label set, for as long as the proxy runs). */
  histogram(metric: Histogram<string>, labels: Record<string, string>): HistogramCell {
    const key = `${(metric as unknown as { name: string }).name}\u0000${Object.values(labels).join('\u0000')}`;
    let h = this.histograms.get(key);
    if (!h) {
      h = new HistogramCell(metric, labels);
      this.histograms.set(key, h);
    }
    return h;
  }

  /** The stats of one (listener, route, cluster); the same object for as long as the proxy runs. */
  route(listener: string, route: string, cluster: string): RouteStats {
    const key = `${listener}\u0000${route}\u0000${cluster}`;
    let s = this.routes.get(key);
    if (!s) {
      s = new RouteStats(listener, route, cluster, this.histogram(this.metrics.requestDuration, { route, cluster }));
      this.routes.set(key, s);
    }
    return s;
  }

  endpoint(cluster: string, endpoint: string): EndpointStats {
    const key = `${cluster}\u0000${endpoint}`;
    let s = this.endpoints.get(key);
    if (!s) {
      s = new EndpointStats(cluster, endpoint);
      this.endpoints.set(key, s);
    }
    return s;
  }

  addGauge(update: () => void): void {
    this.gauges.push(update);
  }

  /** Moves everything counted since the last flush into the registry. */
  flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const m = this.metrics;
      for (const s of this.routes.values()) {
        s.counts.drain((key, n) => {
          const reasonIdx = key % 32;
          m.requests.inc(
            { listener: s.listener, route: s.route, cluster: s.cluster, code: String((key - reasonIdx) / 32), reason: reasonIdx === 0 ? NO_REASON : REASONS[reasonIdx - 1]! },
            n,
          );
        });
        if (s.requestBytes > 0) m.requestBytes.inc({ route: s.route, cluster: s.cluster }, s.requestBytes);
        if (s.responseBytes > 0) m.responseBytes.inc({ route: s.route, cluster: s.cluster }, s.responseBytes);
        s.requestBytes = 0;
        s.responseBytes = 0;
      }
      for (const s of this.endpoints.values()) {
        s.counts.drain((code, n) => m.upstreamAttempts.inc({ cluster: s.cluster, endpoint: s.endpoint, code: String(code) }, n));
      }
      for (const h of this.histograms.values()) h.flush();
      for (const g of this.gauges) g();
    } finally {
      this.flushing = false;
    }
  }
}
