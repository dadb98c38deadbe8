// Request-path counters kept as plain numbers and pushed into the prom-client registry when it
// is read. prom-client hashes its label set on every inc()/set(), even on a bound child (about
// 0.3 µs each, measured); a request touches several counters, so the hot path adds to fields
// here instead and `flush` moves the deltas into the registry on every scrape (it is called
// from the metrics' `collect` hooks, so any reader of the registry sees current values).
import { REASONS, type Reason } from '../reasons.js';
import { NO_REASON, type ProxyMetrics } from './metrics.js';

/** Reason index used as part of a count key: 0 = none (an upstream answer). */
export function reasonIndex(reason: Reason | undefined): number {
  return reason === undefined ? 0 : REASONS.indexOf(reason) + 1;
}

export class RouteStats {
  /** Responses by status * 32 + reason index. */
  readonly counts = new Map<number, number>();
  requestBytes = 0;
  responseBytes = 0;
  readonly duration: { observe(seconds: number): void };

  constructor(
    readonly listener: string,
    readonly route: string,
    readonly cluster: string,
    metrics: ProxyMetrics,
  ) {
    this.duration = metrics.requestDuration.labels(route, cluster);
  }

  record(status: number, reason: Reason | undefined, seconds: number): void {
    const key = status * 32 + reasonIndex(reason);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.duration.observe(seconds);
  }
}

/** Attempts per endpoint by result (a status code, or a reason for failures). */
export class EndpointStats {
  readonly counts = new Map<number | string, number>();
  constructor(
    readonly cluster: string,
    readonly endpoint: string,
  ) {}

  record(code: number | string): void {
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
  }
}

export class HotStats {
  private readonly routes = new Map<string, RouteStats>();
  private readonly endpoints = new Map<string, EndpointStats>();
  /** Gauges computed at scrape time (active requests, connections by state). */
  private readonly gauges: Array<() => void> = [];
  private flushing = false;

  constructor(private readonly metrics: ProxyMetrics) {
    const flush = () => this.flush();
    for (const m of [metrics.requests, metrics.requestBytes, metrics.responseBytes, metrics.upstreamAttempts, metrics.activeRequests, metrics.downstreamConnections, metrics.upstreamConnections]) {
      (m as unknown as { collect: () => void }).collect = flush;
    }
  }

  /** The stats of one (listener, route, cluster); the same object for as long as the proxy runs. */
  route(listener: string, route: string, cluster: string): RouteStats {
    const key = `${listener}\u0000${route}\u0000${cluster}`;
    let s = this.routes.get(key);
    if (!s) {
      s = new RouteStats(listener, route, cluster, this.metrics);
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
        for (const [key, n] of s.counts) {
          const reasonIdx = key % 32;
          m.requests.inc(
            { listener: s.listener, route: s.route, cluster: s.cluster, code: String((key - reasonIdx) / 32), reason: reasonIdx === 0 ? NO_REASON : REASONS[reasonIdx - 1]! },
            n,
          );
        }
        s.counts.clear();
        if (s.requestBytes > 0) m.requestBytes.inc({ route: s.route, cluster: s.cluster }, s.requestBytes);
        if (s.responseBytes > 0) m.responseBytes.inc({ route: s.route, cluster: s.cluster }, s.responseBytes);
        s.requestBytes = 0;
        s.responseBytes = 0;
      }
      for (const s of this.endpoints.values()) {
        for (const [code, n] of s.counts) m.upstreamAttempts.inc({ cluster: s.cluster, endpoint: s.endpoint, code: String(code) }, n);
        s.counts.clear();
      }
      for (const g of this.gauges) g();
    } finally {
      this.flushing = false;
    }
  }
}
