// docs/metrics.md, generated from the registries themselves (`npm run docs:metrics`), so the
// catalogue cannot drift from the code: metrics-doc.test.ts fails when the file is stale.
import { Registry } from 'prom-client';
import { ControlPlaneMetrics } from '../../../control-plane/src/metrics.js';
import { LATENCY_BUCKETS, NO_REASON, ProxyMetrics, collectRuntimeMetrics } from './metrics.js';
import { REASONS } from '../reasons.js';

export interface MetricInfo {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly help: string;
  readonly unit: string;
}

/** What every label means. A label missing here fails the docs test, so new ones get explained. */
export const LABELS: Readonly<Record<string, string>> = {
  listener: 'listener name from the config',
  route: 'route name from the config',
  cluster: 'cluster name from the config',
  endpoint: 'upstream endpoint, `host:port` from the cluster\'s endpoint list',
  code: 'HTTP status code sent (requests) or received (attempts); for attempts without a response, the failure reason',
  reason: `why the proxy answered itself (\`${REASONS.join('`, `')}\`), or \`${NO_REASON}\` when the upstream answered`,
  resource: 'circuit-breaker resource: `connections`, `pending`, `requests`, `retries`',
  result:
    'outcome: `success`/`failure`/`timeout` (health checks), `applied`/`rejected` (config applies), `acked`/`nacked` (control-plane updates); ' +
    'control plane: `stored`/`invalid` (applies and rollbacks)',
  api: 'control plane API a refused request came to: `grpc` (proxy streams), `http` (people and the CLI)',
  state: 'upstream connection state: `active`, `idle`',
  version: 'config version (`tsmesh_config_info`); Node.js version (`tsmesh_nodejs_version_info`)',
  source: 'where the running config came from: `file`, `control-plane`, `disk-cache`',
  type: 'kind of libuv handle or request (Node.js runtime metrics)',
  space: 'V8 heap space',
  kind: 'garbage-collection kind',
  major: 'Node.js major version',
  minor: 'Node.js minor version',
  patch: 'Node.js patch version',
};

function unitOf(name: string, type: string, help: string): string {
  if (/_seconds(_total)?$/.test(name)) return 'seconds';
  if (/_bytes(_total)?$/.test(name)) return 'bytes';
  if (name.endsWith('_info')) return 'info (value 1)';
  if (type === 'gauge' && /^(1 while|Active health-check verdict: 1|1 for)/.test(help)) return '0 or 1';
  if (name.endsWith('_fds')) return 'file descriptors';
  return 'count';
}

export function describeRegistry(registry: Registry, skip: ReadonlySet<string> = new Set()): MetricInfo[] {
  const out: MetricInfo[] = [];
  for (const metric of registry.getMetricsAsArray()) {
    if (skip.has(metric.name)) continue;
    const type = String(metric.type);
    // prom-client keeps the declared label names on the metric object; its typings omit them.
    const labels = (metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
    out.push({ name: metric.name, type, labels, help: metric.help, unit: unitOf(metric.name, type, metric.help) });
  }
  return out;
}

/** Names of the runtime metrics (prom-client's defaults) registered with the tsmesh_ (or another) prefix. */
export function defaultMetricNames(prefix = 'tsmesh_'): Set<string> {
  const r = new Registry();
  collectRuntimeMetrics(r, prefix);
  return new Set(r.getMetricsAsArray().map((m) => m.name));
}

export interface DocSection {
  readonly title: string;
  readonly intro: string;
  /** Undefined: the section is a placeholder (text only). */
  readonly metrics?: readonly MetricInfo[];
}

const escapeCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function metricTable(metrics: readonly MetricInfo[]): string {
  const rows = metrics.map((m) => `| \`${m.name}\` | ${m.type} | ${m.labels.length ? m.labels.map((l) => `\`${l}\``).join(', ') : '—'} | ${m.unit} | ${escapeCell(m.help)} |`);
  return ['| name | type | labels | unit | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** The proxy's catalogue: its own metrics, then the runtime ones prom-client adds. */
export async function proxySections(): Promise<DocSection[]> {
  const metrics = new ProxyMetrics();
  const defaults = defaultMetricNames();
  const own = describeRegistry(metrics.registry, defaults);
  const runtime = describeRegistry(metrics.registry).filter((m) => defaults.has(m.name));
  return [
    {
      title: 'Proxy',
      intro:
        'Declared in one list in `proxy/src/telemetry/metrics.ts` (`ProxyMetrics`), served on the admin listener at `GET /metrics`. ' +
        `Histograms of durations use the buckets ${LATENCY_BUCKETS.map((b) => `${b}`).join(', ')} seconds (sub-millisecond proxy overhead to slow upstreams) ` +
        'and export `_bucket{le}`, `_sum` and `_count` series.',
      metrics: own,
    },
    {
      title: 'Proxy process and Node.js runtime',
      intro:
        "prom-client's default metrics, with the `tsmesh_` prefix, on the same `/metrics` (without its `nodejs_active_*_total` gauges, " +
        'which break the rule that only counters end in `_total`; sum the per-type gauges instead).',
      metrics: runtime,
    },
  ];
}

/** The control plane's catalogue: its own metrics (ControlPlaneMetrics); its runtime metrics are the proxy's list with `tsmesh_cp_`. */
export function controlPlaneSections(): DocSection[] {
  const metrics = new ControlPlaneMetrics();
  const defaults = defaultMetricNames('tsmesh_cp_');
  return [
    {
      title: 'Control plane',
      intro:
        "Declared in `control-plane/src/metrics.ts` (`ControlPlaneMetrics`, one registry per control-plane replica), served on its HTTP API's " +
        '`GET /metrics` (no token needed). Each replica counts the proxy streams connected to it; sum over replicas for the mesh. ' +
        'The process and Node.js runtime metrics are the same as the proxy\'s (table above) with the prefix `tsmesh_cp_` instead of `tsmesh_` ' +
        `(\`tsmesh_cp_process_cpu_seconds_total\`, \`tsmesh_cp_process_resident_memory_bytes\`, ...; ${defaults.size} metrics).`,
      metrics: describeRegistry(metrics.registry, defaults),
    },
  ];
}

export function renderMetricsDoc(sections: readonly DocSection[]): string {
  const out: string[] = [];
  out.push('# Metrics');
  out.push('');
  out.push('<!-- Generated by `npm run docs:metrics` from the metric registries; do not edit by hand. -->');
  out.push('');
  out.push(
    'Every metric is named `tsmesh_<what>_<unit>`: counters end in `_total`, durations are in `_seconds`, sizes in `_bytes`. ' +
      'Labels are low-cardinality names from the config and fixed vocabularies (route, cluster, endpoint, code, reason, ...), ' +
      'never a path, a header value or an id, so a proxy exports a bounded number of series however it is used.',
  );
  out.push('');
  out.push(
    'Every response the proxy makes itself carries `x-tsmesh-reason` and is counted in `tsmesh_requests_total` under the same ' +
      `\`reason\`; responses from the upstream have \`reason="${NO_REASON}"\`. Request rate, error rate (5xx share) and latency ` +
      'quantiles per route and cluster therefore come from two metrics: `tsmesh_requests_total` and `tsmesh_request_duration_seconds`. ' +
      'See `examples/observability/` for a Grafana dashboard and alert rules built on them, and `tsmesh stat` for the same view in a terminal.',
  );
  const used = new Set<string>();
  for (const s of sections) {
    out.push('');
    out.push(`## ${s.title}`);
    out.push('');
    out.push(s.intro);
    if (s.metrics) {
      out.push('');
      out.push(metricTable(s.metrics));
      for (const m of s.metrics) for (const l of m.labels) used.add(l);
    }
  }
  out.push('');
  out.push('## Labels');
  out.push('');
  out.push('| label | values |');
  out.push('|---|---|');
  for (const l of Object.keys(LABELS)) if (used.has(l)) out.push(`| \`${l}\` | ${escapeCell(LABELS[l]!)} |`);
  out.push('');
  out.push('## Queries');
  out.push('');
  out.push('```promql');
  out.push('# requests per second, per route and cluster');
  out.push('sum by (route, cluster) (rate(tsmesh_requests_total[5m]))');
  out.push('# error rate: share of 5xx responses');
  out.push('sum by (route, cluster) (rate(tsmesh_requests_total{code=~"5.."}[5m])) / sum by (route, cluster) (rate(tsmesh_requests_total[5m]))');
  out.push('# rejections by reason');
  out.push(`sum by (reason) (rate(tsmesh_requests_total{reason!="${NO_REASON}"}[5m]))`);
  out.push('# p95 latency per route and cluster');
  out.push('histogram_quantile(0.95, sum by (le, route, cluster) (rate(tsmesh_request_duration_seconds_bucket[5m])))');
  out.push('# CPU: share of one core (the event loop is one thread)');
  out.push('rate(tsmesh_process_cpu_seconds_total[5m])');
  out.push('# memory: share of what the process may use');
  out.push('tsmesh_process_resident_memory_bytes / tsmesh_process_memory_limit_bytes');
  out.push('```');
  out.push('');
  return out.join('\n');
}

/** The whole docs/metrics.md as it should be now. */
export async function metricsDoc(): Promise<string> {
  return renderMetricsDoc([...(await proxySections()), ...controlPlaneSections()]);
}

/** Every metric name a dashboard or rule may use, with histogram series names. */
export async function catalogueSeriesNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const s of await proxySections()) {
    for (const m of s.metrics ?? []) {
      names.add(m.name);
      if (m.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
    }
  }
  return names;
}
