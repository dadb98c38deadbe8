// Every metric a proxy exports, declared in one list (like Envoy's per-filter stat lists)
// so that names, labels and help texts are reviewed together and documented from here
// (docs/metrics.md). Each proxy instance owns a Registry, so several proxies can run in one
// process (tests) without sharing counters.
//
// Rules: `tsmesh_` prefix, unit in the name, labels only from route, cluster, endpoint,
// listener, code, reason, resource, result, state: never a path or an id. Hot-path code binds
// label children once per config snapshot (`metric.labels(...)`) rather than per request.
import { totalmem } from 'node:os';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Sub-millisecond to seconds: proxy overhead and rejections sit in the first buckets. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** `reason` label value of a response that came from the upstream (no rejection reason). */
export const NO_REASON = 'none';

export class ProxyMetrics {
  readonly registry: Registry;

  // --- requests (downstream view) ---
  readonly requests: Counter<'listener' | 'route' | 'cluster' | 'code' | 'reason'>;
  readonly requestDuration: Histogram<'route' | 'cluster'>;
  readonly activeRequests: Gauge<'listener'>;
  readonly requestBytes: Counter<'route' | 'cluster'>;
  readonly responseBytes: Counter<'route' | 'cluster'>;

  // --- downstream connections ---
  readonly downstreamConnections: Gauge<'listener'>;
  readonly downstreamConnectionsTotal: Counter<'listener'>;
  /** Connections accepted above maxConnections and answered 503 overloaded. */
  readonly downstreamConnectionsOverflow: Counter<'listener'>;

  // --- upstream ---
  readonly upstreamAttempts: Counter<'cluster' | 'endpoint' | 'code'>;
  readonly upstreamAttemptDuration: Histogram<'cluster'>;
  readonly upstreamConnections: Gauge<'cluster' | 'state'>;
  readonly upstreamConnectionsOpened: Counter<'cluster'>;
  readonly upstreamConnectFailures: Counter<'cluster' | 'endpoint'>;
  /** Requests sent again on a fresh connection after a reused one closed under them. */
  readonly upstreamStaleConnectionRetries: Counter<'cluster'>;

  // --- resilience policies ---
  readonly retries: Counter<'route' | 'cluster'>;
  readonly retryBudgetExhausted: Counter<'route' | 'cluster'>;
  readonly breakerRejections: Counter<'cluster' | 'resource'>;
  readonly breakerOpen: Gauge<'cluster' | 'resource'>;
  readonly outlierEjections: Counter<'cluster' | 'endpoint'>;
  readonly endpointEjected: Gauge<'cluster' | 'endpoint'>;
  readonly endpointHealthy: Gauge<'cluster' | 'endpoint'>;
  readonly healthChecks: Counter<'cluster' | 'endpoint' | 'result'>;
  readonly concurrencyLimit: Gauge<'cluster'>;
  readonly concurrencyInFlight: Gauge<'cluster'>;
  readonly concurrencyQueueDepth: Gauge<'cluster'>;
  readonly concurrencyQueueWait: Histogram<'cluster'>;
  readonly rateLimitFallback: Counter<'route'>;
  readonly rateLimitBackendUp: Gauge;
  readonly accessLogDropped: Counter;

  // --- config and control plane ---
  readonly configInfo: Gauge<'version' | 'source'>;
  readonly configApplies: Counter<'result'>;
  readonly controlPlaneConnected: Gauge;
  /** Snapshots from the control plane by result: acked (applied), nacked (refused, old config kept). */
  readonly controlPlaneUpdates: Counter<'result'>;

  // --- process (besides prom-client's defaults, tsmesh_process_* and tsmesh_nodejs_*) ---
  /** The denominator of "memory > 90 %" alerts: what this process may use. */
  readonly memoryLimit: Gauge;

  /**
   * Functions that copy live state (in-flight counts, queue depths, limits) into gauges right
   * before those gauges are scraped, so that hot paths never write a gauge per request.
   */
  private readonly scrapeHooks = new Map<string, () => void>();
  private readonly runScrapeHooks = (): void => {
    for (const fn of this.scrapeHooks.values()) fn();
  };

  constructor(registry = new Registry()) {
    this.registry = registry;
    const r = [registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter<L>({ name, help, labelNames, registers: r });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], collect?: () => void) =>
      new Gauge<L>({ name, help, labelNames, registers: r, ...(collect ? { collect } : {}) });
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers: r });

    this.requests = counter('tsmesh_requests_total', 'Requests answered, by route, cluster, status code and reason (none: the upstream answered).', ['listener', 'route', 'cluster', 'code', 'reason']);
    this.requestDuration = histogram('tsmesh_request_duration_seconds', 'Time from a complete request head to the end of the response.', ['route', 'cluster']);
    this.activeRequests = gauge('tsmesh_active_requests', 'Requests being handled now.', ['listener']);
    this.requestBytes = counter('tsmesh_request_body_bytes_total', 'Request body bytes sent upstream.', ['route', 'cluster']);
    this.responseBytes = counter('tsmesh_response_body_bytes_total', 'Response body bytes sent to clients.', ['route', 'cluster']);

    this.downstreamConnections = gauge('tsmesh_downstream_connections', 'Client connections open now.', ['listener']);
    this.downstreamConnectionsTotal = counter('tsmesh_downstream_connections_total', 'Client connections accepted.', ['listener']);
    this.downstreamConnectionsOverflow = counter('tsmesh_downstream_connections_overflow_total', 'Client connections accepted above maxConnections and answered 503 overloaded.', ['listener']);

    this.upstreamAttempts = counter('tsmesh_upstream_attempts_total', 'Upstream attempts by endpoint and result (status code, or a reason for failures).', ['cluster', 'endpoint', 'code']);
    this.upstreamAttemptDuration = histogram('tsmesh_upstream_attempt_duration_seconds', 'Time from sending an attempt to the upstream response head.', ['cluster']);
    this.upstreamConnections = gauge('tsmesh_upstream_connections', 'Upstream connections by state (active, idle).', ['cluster', 'state']);
    this.upstreamConnectionsOpened = counter('tsmesh_upstream_connections_opened_total', 'Upstream connections opened.', ['cluster']);
    this.upstreamConnectFailures = counter('tsmesh_upstream_connect_failures_total', 'Upstream connection attempts that failed or timed out.', ['cluster', 'endpoint']);
    this.upstreamStaleConnectionRetries = counter('tsmesh_upstream_stale_connection_retries_total', 'Requests resent on a fresh connection after a reused idle one was closed by the upstream.', ['cluster']);

    this.retries = counter('tsmesh_retries_total', 'Retries sent (attempts after the first).', ['route', 'cluster']);
    this.retryBudgetExhausted = counter('tsmesh_retry_budget_exhausted_total', 'Retries not sent because the retry budget was spent.', ['route', 'cluster']);
    this.breakerRejections = counter('tsmesh_circuit_breaker_rejections_total', 'Requests rejected because a circuit-breaker threshold was reached, by resource (connections, pending, requests, retries).', ['cluster', 'resource']);
    this.breakerOpen = gauge('tsmesh_circuit_breaker_open', '1 while a circuit-breaker resource is at its threshold.', ['cluster', 'resource'], this.runScrapeHooks);
    this.outlierEjections = counter('tsmesh_outlier_ejections_total', 'Endpoint ejections by outlier detection.', ['cluster', 'endpoint']);
    this.endpointEjected = gauge('tsmesh_endpoint_ejected', '1 while an endpoint is ejected.', ['cluster', 'endpoint']);
    this.endpointHealthy = gauge('tsmesh_endpoint_healthy', 'Active health-check verdict: 1 healthy, 0 unhealthy.', ['cluster', 'endpoint']);
    this.healthChecks = counter('tsmesh_health_checks_total', 'Active health checks by result (success, failure, timeout).', ['cluster', 'endpoint', 'result']);
    this.concurrencyLimit = gauge('tsmesh_concurrency_limit', 'Current concurrency limit of a cluster (static or adaptive).', ['cluster'], this.runScrapeHooks);
    this.concurrencyInFlight = gauge('tsmesh_concurrency_in_flight', 'Requests holding a concurrency slot.', ['cluster'], this.runScrapeHooks);
    this.concurrencyQueueDepth = gauge('tsmesh_concurrency_queue_depth', 'Requests waiting for a concurrency slot.', ['cluster'], this.runScrapeHooks);
    this.concurrencyQueueWait = histogram('tsmesh_concurrency_queue_wait_seconds', 'Time requests waited for a concurrency slot.', ['cluster']);
    this.rateLimitFallback = counter('tsmesh_rate_limit_fallback_total', 'Global rate-limit decisions taken locally because Redis was unreachable.', ['route']);
    this.rateLimitBackendUp = gauge('tsmesh_rate_limit_backend_up', '1 while the global rate-limit backend (Redis) is reachable.', []);
    this.accessLogDropped = counter('tsmesh_access_log_dropped_lines_total', 'Access log lines dropped because the destination did not keep up (16 MiB of lines were waiting).', []);

    this.configInfo = gauge('tsmesh_config_info', 'The running config: 1 for its version and source.', ['version', 'source']);
    this.configApplies = counter('tsmesh_config_applies_total', 'Config applies by result (applied, rejected).', ['result']);
    this.controlPlaneConnected = gauge('tsmesh_control_plane_connected', '1 while the control-plane stream is up.', []);
    this.controlPlaneUpdates = counter('tsmesh_control_plane_updates_total', 'Snapshots received from the control plane, by result (acked, nacked).', ['result']);

    this.memoryLimit = new Gauge({
      name: 'tsmesh_process_memory_limit_bytes',
      help: 'Memory this process may use: its cgroup (container) limit, else the machine\'s total memory.',
      registers: r,
      collect() {
        this.set(memoryLimitBytes());
      },
    });

    collectRuntimeMetrics(registry);
  }

  /**
   * Sets, under a key such as "concurrency:gateway", the function that writes live state into
   * the breaker-open and concurrency gauges at scrape time; undefined removes it. A later call
   * with the same key replaces the earlier one (one per cluster and policy, not per snapshot).
   * Cluster policies set theirs through clusterScrapeHooks (policy/scrape-hooks.ts), which
   * releases them with the cluster.
   */
  setScrapeHook(key: string, fn: (() => void) | undefined): void {
    if (fn) this.scrapeHooks.set(key, fn);
    else this.scrapeHooks.delete(key);
  }

  /** Removes the hook under `key` only if it is still `fn` (a later setScrapeHook replaced it otherwise). */
  removeScrapeHook(key: string, fn: () => void): void {
    if (this.scrapeHooks.get(key) === fn) this.scrapeHooks.delete(key);
  }

  /** Number of scrape hooks set (for tests of their release). */
  get scrapeHookCount(): number {
    return this.scrapeHooks.size;
  }

  /**
   * Removes the gauge series of a cluster that scrape hooks write (breaker open, concurrency
   * limit, in flight, queue depth), so a removed cluster does not keep exporting its last
   * values. A hook still set for that cluster writes them again at the next scrape.
   */
  removeClusterGauges(cluster: string): void {
    for (const resource of BREAKER_RESOURCES) this.breakerOpen.remove(cluster, resource);
    this.concurrencyLimit.remove(cluster);
    this.concurrencyInFlight.remove(cluster);
    this.concurrencyQueueDepth.remove(cluster);
  }
}

/** The cgroup memory limit when there is one (Node reports "no limit" as a huge number), else total memory. */
export function memoryLimitBytes(): number {
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total ? constrained : total;
}

/**
 * prom-client's default process and Node.js metrics under `prefix`, minus the three gauges it
 * names `*_total` (active handles, requests, resources), which break the Prometheus naming
 * rule that only counters end in `_total` (`promtool check metrics` rejects them). Their
 * per-type gauges stay; summing them gives the totals.
 */
export function collectRuntimeMetrics(registry: Registry, prefix = 'tsmesh_'): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(prefix + name);
  }
}

/** `resource` label values of the circuit-breaker metrics. */
export const BREAKER_RESOURCES = ['connections', 'pending', 'requests', 'retries'] as const;
