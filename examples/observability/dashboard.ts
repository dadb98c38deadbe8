// The Grafana dashboard of examples/observability/grafana-dashboard.json, one line per panel
// query, so that it stays reviewable: `npm run examples:dashboard` writes the JSON, and
// test/observability/examples.test.ts fails when the JSON is stale, when a query does not parse
// (promtool) or names a metric missing from the catalogue (docs/metrics.md).
//
// Import it in Grafana (Dashboards → New → Import); it asks for a Prometheus data source.
// Variables: instance (proxy), route, cluster. Rows: RED per route and cluster, resilience
// policies, connections, config and control plane, process.

export interface Target {
  readonly expr: string;
  readonly legendFormat: string;
}

interface Panel {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly Target[];
  /** A red line at this value. */
  readonly threshold?: number;
  readonly kind?: 'timeseries' | 'stat' | 'table';
  readonly stack?: boolean;
}

interface Row {
  readonly title: string;
  readonly panels: readonly Panel[];
}

const SEL = 'instance=~"$instance"';
const RC = `${SEL}, route=~"$route", cluster=~"$cluster"`;
const C = `${SEL}, cluster=~"$cluster"`;
const R = '$__rate_interval';

const t = (expr: string, legendFormat: string): Target => ({ expr, legendFormat });
const quantile = (q: number, metric: string, by: string, sel: string) => `histogram_quantile(${q}, sum by (le, ${by}) (rate(${metric}_bucket{${sel}}[${R}])))`;

export const ROWS: readonly Row[] = [
  {
    title: 'Traffic per route and cluster (rate, errors, duration)',
    panels: [
      { title: 'Requests/s', description: 'Responses per second by route and cluster, upstream answers and rejections alike.', unit: 'reqps', targets: [t(`sum by (route, cluster) (rate(tsmesh_requests_total{${RC}}[${R}]))`, '{{route}} → {{cluster}}')] },
      {
        title: 'Success rate',
        description: 'Share of responses below 500. The alert fires when the 5xx share stays above 10 %.',
        unit: 'percentunit',
        threshold: 0.9,
        targets: [t(`sum by (route, cluster) (rate(tsmesh_requests_total{${RC}, code!~"5.."}[${R}])) / sum by (route, cluster) (rate(tsmesh_requests_total{${RC}}[${R}]))`, '{{route}} → {{cluster}}')],
      },
      {
        title: 'Rejections by reason',
        description: 'Responses the proxy made itself (x-tsmesh-reason): overloaded, rate_limited, circuit_open, upstream_* ...',
        unit: 'reqps',
        stack: true,
        targets: [t(`sum by (reason) (rate(tsmesh_requests_total{${RC}, reason!="none"}[${R}]))`, '{{reason}}')],
      },
      { title: 'Errors by status', description: '5xx responses by status code, whoever made them.', unit: 'reqps', stack: true, targets: [t(`sum by (code) (rate(tsmesh_requests_total{${RC}, code=~"5.."}[${R}]))`, '{{code}}')] },
      {
        title: 'Request duration p50 / p95 / p99',
        description: 'From a complete request head to the end of the response. The alert threshold for p95 is 500 ms.',
        unit: 's',
        threshold: 0.5,
        targets: [
          t(quantile(0.5, 'tsmesh_request_duration_seconds', 'route, cluster', RC), 'p50 {{route}} → {{cluster}}'),
          t(quantile(0.95, 'tsmesh_request_duration_seconds', 'route, cluster', RC), 'p95 {{route}} → {{cluster}}'),
          t(quantile(0.99, 'tsmesh_request_duration_seconds', 'route, cluster', RC), 'p99 {{route}} → {{cluster}}'),
        ],
      },
      { title: 'Active requests', description: 'Requests being handled now, per proxy and listener.', unit: 'short', targets: [t(`sum by (instance, listener) (tsmesh_active_requests{${SEL}})`, '{{instance}} {{listener}}')] },
      {
        title: 'Upstream attempts by endpoint and result',
        description: 'Every try sent to an upstream endpoint, retries included; code is the status, or the failure reason.',
        unit: 'reqps',
        targets: [t(`sum by (cluster, endpoint, code) (rate(tsmesh_upstream_attempts_total{${C}}[${R}]))`, '{{endpoint}} {{code}}')],
      },
      {
        title: 'Upstream attempt duration p50 / p99',
        description: 'From sending an attempt to the upstream response head.',
        unit: 's',
        targets: [
          t(quantile(0.5, 'tsmesh_upstream_attempt_duration_seconds', 'cluster', C), 'p50 {{cluster}}'),
          t(quantile(0.99, 'tsmesh_upstream_attempt_duration_seconds', 'cluster', C), 'p99 {{cluster}}'),
        ],
      },
      {
        title: 'Bytes',
        description: 'Request bodies sent upstream and response bodies sent to clients.',
        unit: 'Bps',
        targets: [
          t(`sum by (route) (rate(tsmesh_request_body_bytes_total{${RC}}[${R}]))`, 'in {{route}}'),
          t(`sum by (route) (rate(tsmesh_response_body_bytes_total{${RC}}[${R}]))`, 'out {{route}}'),
        ],
      },
    ],
  },
  {
    title: 'Resilience policies',
    panels: [
      {
        title: 'Retries and retry budget',
        description: 'Retries sent, and retries refused because the budget (share of active requests) was spent.',
        unit: 'reqps',
        targets: [
          t(`sum by (route, cluster) (rate(tsmesh_retries_total{${RC}}[${R}]))`, 'retries {{route}} → {{cluster}}'),
          t(`sum by (route, cluster) (rate(tsmesh_retry_budget_exhausted_total{${RC}}[${R}]))`, 'budget exhausted {{route}} → {{cluster}}'),
        ],
      },
      {
        title: 'Circuit breakers',
        description: 'Breaker resources at their threshold (1 = open) and the requests they turned away.',
        unit: 'short',
        targets: [
          t(`max by (cluster, resource) (tsmesh_circuit_breaker_open{${C}})`, 'open {{cluster}} {{resource}}'),
          t(`sum by (cluster, resource) (rate(tsmesh_circuit_breaker_rejections_total{${C}}[${R}]))`, 'rejected/s {{cluster}} {{resource}}'),
        ],
      },
      {
        title: 'Outlier ejections',
        description: 'Endpoints ejected now (by how many proxies) and ejections per second.',
        unit: 'short',
        targets: [
          t(`sum by (cluster, endpoint) (tsmesh_endpoint_ejected{${C}})`, 'ejected {{endpoint}}'),
          t(`sum by (cluster, endpoint) (rate(tsmesh_outlier_ejections_total{${C}}[${R}]))`, 'ejections/s {{endpoint}}'),
        ],
      },
      {
        title: 'Active health checks',
        description: 'Worst verdict per endpoint across proxies (1 healthy, 0 unhealthy) and checks by result.',
        unit: 'short',
        targets: [
          t(`min by (cluster, endpoint) (tsmesh_endpoint_healthy{${C}})`, 'healthy {{endpoint}}'),
          t(`sum by (cluster, result) (rate(tsmesh_health_checks_total{${C}}[${R}]))`, 'checks/s {{cluster}} {{result}}'),
        ],
      },
      {
        title: 'Concurrency limit and queue',
        description: 'The (adaptive) concurrency limit, requests holding a slot, and requests queued for one.',
        unit: 'short',
        targets: [
          t(`sum by (cluster) (tsmesh_concurrency_limit{${C}})`, 'limit {{cluster}}'),
          t(`sum by (cluster) (tsmesh_concurrency_in_flight{${C}})`, 'in flight {{cluster}}'),
          t(`sum by (cluster) (tsmesh_concurrency_queue_depth{${C}})`, 'queued {{cluster}}'),
        ],
      },
      { title: 'Concurrency queue wait p99', description: 'Time requests waited for a concurrency slot.', unit: 's', targets: [t(quantile(0.99, 'tsmesh_concurrency_queue_wait_seconds', 'cluster', C), 'p99 {{cluster}}')] },
      {
        title: 'Rate limiting',
        description: 'Requests refused with 429, global limits decided locally while Redis was away, and whether Redis is reachable.',
        unit: 'short',
        targets: [
          t(`sum by (route) (rate(tsmesh_requests_total{${RC}, reason="rate_limited"}[${R}]))`, 'limited/s {{route}}'),
          t(`sum by (route) (rate(tsmesh_rate_limit_fallback_total{${SEL}, route=~"$route"}[${R}]))`, 'local fallback/s {{route}}'),
          t(`min(tsmesh_rate_limit_backend_up{${SEL}})`, 'Redis reachable'),
        ],
      },
    ],
  },
  {
    title: 'Connections',
    panels: [
      {
        title: 'Client connections',
        description: 'Open client connections, and connections accepted above maxConnections (answered 503 overloaded).',
        unit: 'short',
        targets: [
          t(`sum by (instance, listener) (tsmesh_downstream_connections{${SEL}})`, 'open {{instance}} {{listener}}'),
          t(`sum by (listener) (rate(tsmesh_downstream_connections_total{${SEL}}[${R}]))`, 'accepted/s {{listener}}'),
          t(`sum by (listener) (rate(tsmesh_downstream_connections_overflow_total{${SEL}}[${R}]))`, 'over limit/s {{listener}}'),
        ],
      },
      {
        title: 'Upstream connections',
        description: 'Pooled upstream connections by state, new connections, connect failures and stale-connection resends.',
        unit: 'short',
        targets: [
          t(`sum by (cluster, state) (tsmesh_upstream_connections{${C}})`, '{{state}} {{cluster}}'),
          t(`sum by (cluster) (rate(tsmesh_upstream_connections_opened_total{${C}}[${R}]))`, 'opened/s {{cluster}}'),
          t(`sum by (cluster) (rate(tsmesh_upstream_connect_failures_total{${C}}[${R}]))`, 'connect failures/s {{cluster}}'),
          t(`sum by (cluster) (rate(tsmesh_upstream_stale_connection_retries_total{${C}}[${R}]))`, 'stale resends/s {{cluster}}'),
        ],
      },
    ],
  },
  {
    title: 'Config and control plane',
    panels: [
      { title: 'Config version', description: 'Running config version and where it came from, per proxy.', unit: 'short', kind: 'table', targets: [t(`max by (instance, version, source) (tsmesh_config_info{${SEL}})`, '{{instance}} {{version}} {{source}}')] },
      { title: 'Proxies per config version', description: 'How many proxies run each version: more than one line means a rollout in progress (or stuck).', unit: 'short', targets: [t(`count by (version) (tsmesh_config_info{${SEL}})`, 'version {{version}}')] },
      {
        title: 'Control plane',
        description: 'Proxies connected to the control plane, and config applies by result (rejected = NACKed).',
        unit: 'short',
        targets: [
          t(`sum(tsmesh_control_plane_connected{${SEL}})`, 'connected proxies'),
          t(`sum by (result) (increase(tsmesh_config_applies_total{${SEL}}[${R}]))`, 'applies {{result}}'),
        ],
      },
    ],
  },
  {
    title: 'Proxy process',
    panels: [
      { title: 'CPU (share of one core)', description: 'The event loop is one thread: 1.0 is a saturated proxy. Alert at 80 %.', unit: 'percentunit', threshold: 0.8, targets: [t(`rate(tsmesh_process_cpu_seconds_total{${SEL}}[${R}])`, '{{instance}}')] },
      {
        title: 'Memory (share of the limit)',
        description: 'Resident memory over the cgroup limit (or the machine\'s memory). Alert at 90 %.',
        unit: 'percentunit',
        threshold: 0.9,
        targets: [t(`tsmesh_process_resident_memory_bytes{${SEL}} / tsmesh_process_memory_limit_bytes{${SEL}}`, '{{instance}}')],
      },
      { title: 'Event loop lag p99', description: 'How late timers and I/O callbacks run: the proxy\'s own queueing delay.', unit: 's', targets: [t(`max by (instance) (tsmesh_nodejs_eventloop_lag_p99_seconds{${SEL}})`, '{{instance}}')] },
    ],
  },
];

const DS = { type: 'prometheus', uid: '${datasource}' };

function panelJson(p: Panel, id: number, x: number, y: number, w: number, h: number): Record<string, unknown> {
  const kind = p.kind ?? 'timeseries';
  const thresholds = {
    mode: 'absolute',
    steps: [{ color: 'green', value: null }, ...(p.threshold !== undefined ? [{ color: 'red', value: p.threshold }] : [])],
  };
  return {
    id,
    type: kind,
    title: p.title,
    description: p.description,
    datasource: DS,
    gridPos: { x, y, w, h },
    fieldConfig: {
      defaults: {
        unit: p.unit,
        thresholds,
        ...(kind === 'timeseries'
          ? { custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: p.stack ? 30 : 10, stacking: { mode: p.stack ? 'normal' : 'none' }, thresholdsStyle: { mode: p.threshold !== undefined ? 'line' : 'off' } } }
          : {}),
      },
      overrides: [],
    },
    options: kind === 'table' ? { showHeader: true } : { legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: p.targets.map((target, i) => ({
      datasource: DS,
      refId: String.fromCharCode(65 + i),
      expr: target.expr,
      legendFormat: target.legendFormat,
      ...(kind === 'table' ? { format: 'table', instant: true } : { range: true }),
    })),
  };
}

function variable(name: string, label: string, query: string): Record<string, unknown> {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    query: { query, refId: `${name}-values` },
    definition: query,
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  };
}

export function buildDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    row.panels.forEach((p, i) => {
      const w = 12;
      const h = 8;
      panels.push(panelJson(p, id++, (i % 2) * w, y + Math.floor(i / 2) * h, w, h));
    });
    y += Math.ceil(row.panels.length / 2) * 8;
  }
  return {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    uid: 'tsmesh-proxies',
    title: 'tsmesh proxies',
    description: 'RED view per route and cluster, resilience policies, connections, config and process of tsmesh proxies. Metrics: docs/metrics.md.',
    tags: ['tsmesh', 'service-mesh'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '10s',
    time: { from: 'now-1h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
        variable('instance', 'Proxy', 'label_values(tsmesh_requests_total, instance)'),
        variable('route', 'Route', 'label_values(tsmesh_requests_total{instance=~"$instance"}, route)'),
        variable('cluster', 'Cluster', 'label_values(tsmesh_requests_total{instance=~"$instance"}, cluster)'),
      ],
    },
    annotations: { list: [] },
    links: [],
    panels,
  };
}

/** Every PromQL expression of the dashboard: panel queries and variable queries' selectors. */
export function dashboardExpressions(dashboard: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const p of dashboard.panels as Array<{ targets?: Array<{ expr: string }> }>) for (const target of p.targets ?? []) out.push(target.expr);
  return out;
}
