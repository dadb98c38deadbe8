// `tsmesh stat` arithmetic: from two scrapes of each proxy's /metrics, the figures of the
// window between them, per route and per cluster, summed over proxies (as `linkerd viz stat`
// sums the pods of a deployment). Counters are differenced per series; a series that went down
// was reset (the proxy restarted) and counts from zero, as Prometheus's rate() treats it.
//
//   success rate  responses below 500 / all responses         (tsmesh_requests_total, by code)
//   requests/s    responses / window seconds                  (each proxy over its own window)
//   p50/p95/p99   from tsmesh_request_duration_seconds buckets, interpolated in the bucket like
//                 PromQL's histogram_quantile
//   rejections    responses the proxy made itself, by reason  (reason != "none")
import type { Sample } from '../../proxy/src/telemetry/prom-text.js';
import { NO_REASON } from '../../proxy/src/telemetry/metrics.js';

export const REQUESTS = 'tsmesh_requests_total';
export const DURATION_BUCKET = 'tsmesh_request_duration_seconds_bucket';

/** One proxy's /metrics at one moment. */
export interface Scrape {
  /** Which proxy (its admin address); scrapes of the same proxy share it. */
  readonly proxy: string;
  /** When it was taken, ms. */
  readonly time: number;
  readonly samples: readonly Sample[];
}

export interface StatRow {
  /** Empty for the cluster table. */
  readonly route: string;
  readonly cluster: string;
  /** Responses in the window. */
  readonly requests: number;
  /** 0..1; null without responses. */
  readonly successRate: number | null;
  readonly requestsPerSecond: number;
  /** Seconds; null without observations. */
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  /** Responses the proxy made itself in the window, by reason. */
  readonly rejections: Readonly<Record<string, number>>;
}

export interface StatReport {
  /** Mean window over the proxies, seconds. */
  readonly windowSeconds: number;
  /** Proxies present in both scrapes. */
  readonly proxies: number;
  readonly routes: StatRow[];
  readonly clusters: StatRow[];
}

interface Acc {
  route: string;
  cluster: string;
  requests: number;
  success: number;
  rate: number;
  rejections: Map<string, number>;
  /** le → cumulative count delta. */
  buckets: Map<number, number>;
}

const seriesKey = (s: Sample) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;

/** Increase of every counter-like series from `before` to `after` (reset-aware). */
function deltas(before: readonly Sample[], after: readonly Sample[], names: ReadonlySet<string>): Sample[] {
  const prev = new Map<string, number>();
  for (const s of before) if (names.has(s.name)) prev.set(seriesKey(s), s.value);
  const out: Sample[] = [];
  for (const s of after) {
    if (!names.has(s.name)) continue;
    const p = prev.get(seriesKey(s)) ?? 0;
    out.push({ name: s.name, labels: s.labels, value: s.value >= p ? s.value - p : s.value });
  }
  return out;
}

function acc(map: Map<string, Acc>, route: string, cluster: string): Acc {
  const key = `${route}\u0000${cluster}`;
  let a = map.get(key);
  if (!a) {
    a = { route, cluster, requests: 0, success: 0, rate: 0, rejections: new Map(), buckets: new Map() };
    map.set(key, a);
  }
  return a;
}

export function computeStats(before: readonly Scrape[], after: readonly Scrape[]): StatReport {
  const earlier = new Map(before.map((s) => [s.proxy, s]));
  const routes = new Map<string, Acc>();
  const clusters = new Map<string, Acc>();
  const names = new Set([REQUESTS, DURATION_BUCKET]);
  let windows = 0;
  let proxies = 0;
  for (const now of after) {
    const then = earlier.get(now.proxy);
    if (!then || now.time <= then.time) continue;
    proxies++;
    const seconds = (now.time - then.time) / 1000;
    windows += seconds;
    for (const d of deltas(then.samples, now.samples, names)) {
      const route = d.labels.route ?? '';
      const cluster = d.labels.cluster ?? '';
      const targets = [acc(routes, route, cluster), acc(clusters, '', cluster)];
      if (d.name === REQUESTS) {
        const code = Number(d.labels.code);
        const reason = d.labels.reason ?? NO_REASON;
        for (const t of targets) {
          t.requests += d.value;
          t.rate += d.value / seconds;
          if (code < 500) t.success += d.value;
          if (reason !== NO_REASON && d.value > 0) t.rejections.set(reason, (t.rejections.get(reason) ?? 0) + d.value);
        }
      } else {
        const le = parseLe(d.labels.le);
        if (le === undefined) continue;
        for (const t of targets) t.buckets.set(le, (t.buckets.get(le) ?? 0) + d.value);
      }
    }
  }
  const rows = (m: Map<string, Acc>) =>
    [...m.values()]
      .map(toRow)
      .sort((a, b) => (a.route < b.route ? -1 : a.route > b.route ? 1 : a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
  return { windowSeconds: proxies ? windows / proxies : 0, proxies, routes: rows(routes), clusters: rows(clusters) };
}

function parseLe(le: string | undefined): number | undefined {
  if (le === undefined) return undefined;
  if (le === '+Inf') return Infinity;
  const n = Number(le);
  return Number.isNaN(n) ? undefined : n;
}

function toRow(a: Acc): StatRow {
  const buckets = [...a.buckets.entries()].sort(([x], [y]) => x - y).map(([upperBound, count]) => ({ upperBound, count }));
  return {
    route: a.route,
    cluster: a.cluster,
    requests: a.requests,
    successRate: a.requests > 0 ? a.success / a.requests : null,
    requestsPerSecond: a.rate,
    p50: orNull(histogramQuantile(0.5, buckets)),
    p95: orNull(histogramQuantile(0.95, buckets)),
    p99: orNull(histogramQuantile(0.99, buckets)),
    rejections: Object.fromEntries([...a.rejections.entries()].sort(([x], [y]) => (x < y ? -1 : 1))),
  };
}

const orNull = (n: number) => (Number.isNaN(n) ? null : n);

export interface Bucket {
  readonly upperBound: number;
  /** Cumulative count of observations <= upperBound. */
  readonly count: number;
}

/**
 * The q-quantile of a cumulative histogram, as Prometheus's histogram_quantile computes it:
 * find the bucket holding rank q*total, interpolate linearly inside it (from 0 for the first
 * bucket when its bound is positive); a rank in the +Inf bucket answers the highest finite
 * bound. NaN without observations or without a +Inf bucket.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const b = [...buckets].sort((x, y) => x.upperBound - y.upperBound);
  if (b.length < 2 || b[b.length - 1]!.upperBound !== Infinity) return NaN;
  // Counts may dip when series were summed from scrapes taken at slightly different times.
  let max = 0;
  const counts = b.map((x) => (max = Math.max(max, x.count)));
  const total = counts[counts.length - 1]!;
  if (total === 0) return NaN;
  let rank = q * total;
  let i = counts.findIndex((c) => c >= rank);
  if (i < 0) i = counts.length - 1;
  if (i === b.length - 1) return b[b.length - 2]!.upperBound;
  if (i === 0 && b[0]!.upperBound <= 0) return b[0]!.upperBound;
  let start = 0;
  const end = b[i]!.upperBound;
  let count = counts[i]!;
  if (i > 0) {
    start = b[i - 1]!.upperBound;
    count -= counts[i - 1]!;
    rank -= counts[i - 1]!;
  }
  return start + (end - start) * (rank / count);
}
