// The proxy's metrics as Prometheus itself reads them: promtool's linter on a real /metrics
// text, and a real Prometheus scraping a real HTTP server that exposes a ProxyMetrics registry
// and answering rate() with the value the raw samples give.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyMetrics } from '../../proxy/src/telemetry/metrics.js';
import { REASONS } from '../../proxy/src/reasons.js';
import { startMetricsServer, type MetricsServer } from '../support/metrics-server.js';
import { checkMetrics, startPrometheus, type PrometheusServer } from '../support/prometheus.js';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A registry with a value in every metric, as a busy proxy would have. */
function busyProxy(): ProxyMetrics {
  const m = new ProxyMetrics();
  m.requests.labels('edge', 'query', 'gateway', '200', 'none').inc(41);
  for (const reason of REASONS) m.requests.labels('edge', 'query', 'gateway', '503', reason).inc();
  m.requestDuration.labels('query', 'gateway').observe(0.004);
  m.activeRequests.labels('edge').set(3);
  m.requestBytes.labels('query', 'gateway').inc(1200);
  m.responseBytes.labels('query', 'gateway').inc(5400);
  m.downstreamConnections.labels('edge').set(7);
  m.downstreamConnectionsTotal.labels('edge').inc(9);
  m.downstreamConnectionsOverflow.labels('edge').inc(1);
  m.upstreamAttempts.labels('gateway', '127.0.0.1:9001', '200').inc(40);
  m.upstreamAttempts.labels('gateway', '127.0.0.1:9002', 'upstream_connect_failure').inc(2);
  m.upstreamAttemptDuration.labels('gateway').observe(0.003);
  m.upstreamConnections.labels('gateway', 'active').set(2);
  m.upstreamConnections.labels('gateway', 'idle').set(4);
  m.upstreamConnectionsOpened.labels('gateway').inc(6);
  m.upstreamConnectFailures.labels('gateway', '127.0.0.1:9002').inc(2);
  m.upstreamStaleConnectionRetries.labels('gateway').inc();
  m.retries.labels('query', 'gateway').inc(2);
  m.retryBudgetExhausted.labels('query', 'gateway').inc();
  m.breakerRejections.labels('gateway', 'requests').inc();
  m.breakerOpen.labels('gateway', 'requests').set(1);
  m.outlierEjections.labels('gateway', '127.0.0.1:9002').inc();
  m.endpointEjected.labels('gateway', '127.0.0.1:9002').set(1);
  m.endpointHealthy.labels('gateway', '127.0.0.1:9001').set(1);
  m.healthChecks.labels('gateway', '127.0.0.1:9001', 'success').inc(5);
  m.concurrencyLimit.labels('gateway').set(20);
  m.concurrencyInFlight.labels('gateway').set(4);
  m.concurrencyQueueDepth.labels('gateway').set(1);
  m.concurrencyQueueWait.labels('gateway').observe(0.0002);
  m.rateLimitFallback.labels('query').inc();
  m.rateLimitBackendUp.set(1);
  m.configInfo.labels('7', 'control-plane').set(1);
  m.configApplies.labels('applied').inc();
  m.controlPlaneConnected.set(1);
  return m;
}

test('promtool check metrics passes on a ProxyMetrics /metrics text', async () => {
  const text = await busyProxy().registry.metrics();
  const r = await checkMetrics(text);
  assert.deepEqual(r.problems, []);
  assert.ok(r.ok);
});

test('promtool check metrics reports what breaks the rules (the helper sees failures)', async () => {
  const r = await checkMetrics('# HELP x_total not a counter\n# TYPE x_total gauge\nx_total 1\n');
  assert.equal(r.ok, false);
  assert.match(r.problems.join('\n'), /non-counter metrics should not have "_total" suffix/);
});

test('a real Prometheus scrapes a ProxyMetrics registry and answers rate(tsmesh_requests_total[...])', async () => {
  const m = busyProxy();
  const counter = m.requests.labels('edge', 'rated', 'gateway', '200', 'none');
  const server: MetricsServer = await startMetricsServer(m.registry);
  cleanup.push(() => server.close());
  const prom: PrometheusServer = await startPrometheus({ targets: [server.address], scrapeInterval: '200ms' });
  cleanup.push(() => prom.stop());

  // Traffic while Prometheus scrapes: 10 requests every 50 ms, for about 1.6 s. waitForScrapes
  // returns once the target is up after that many intervals; a later scrape may time out (its
  // timeout is the short interval), so what follows reads the samples of successful scrapes
  // and evaluates at the time of the last one rather than now.
  const traffic = setInterval(() => counter.inc(10), 50);
  try {
    await prom.waitForScrapes(8);
  } finally {
    clearInterval(traffic);
  }

  const selector = 'tsmesh_requests_total{route="rated"}';
  const [series] = await prom.querySamples(`${selector}[1m]`);
  assert.ok(series, `no samples of ${selector}: ${prom.log()}`);
  const points = series.values.map(([t, v]) => ({ ms: Math.round(t * 1000), value: Number(v) }));
  const first = points[0]!;
  const last = points[points.length - 1]!;
  assert.ok(points.length >= 5 && last.value > first.value, JSON.stringify(points));

  // A range that starts exactly on the first sample and ends on the last one: rate() has
  // nothing to extrapolate (Prometheus 2.x ranges include their start), so it is exactly the
  // increase over the elapsed time.
  const rangeMs = last.ms - first.ms;
  const expected = (last.value - first.value) / (rangeMs / 1000);
  const [rate] = await prom.query(`rate(${selector}[${rangeMs}ms])`, last.ms / 1000);
  assert.ok(rate, 'rate() returned nothing');
  assert.equal(rate.metric.route, 'rated');
  assert.equal(rate.metric.job, 'tsmesh');
  assert.ok(Math.abs(Number(rate.value[1]) - expected) < 1e-9 * expected, `rate ${rate.value[1]} != ${expected}`);

  // The instant value is the counter as served, and the other series came through as written.
  const [value] = await prom.query(selector, last.ms / 1000);
  assert.equal(Number(value!.value[1]), last.value);
  const [overflow] = await prom.query('tsmesh_downstream_connections_overflow_total', last.ms / 1000);
  assert.equal(overflow!.value[1], '1');
  const [p50] = await prom.query('histogram_quantile(0.5, sum by (le) (tsmesh_request_duration_seconds_bucket{route="query"}))', last.ms / 1000);
  assert.equal(Number(p50!.value[1]), 0.0025 + 0.0025 * 0.5);
});
