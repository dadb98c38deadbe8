import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import { ClusterRegistry, type ClusterState } from '../upstream/cluster-state.js';
import { buildBreaker } from './breaker.js';
import { buildConcurrency } from './concurrency.js';
import { buildRetry } from './retry.js';
import { StateStore } from './state-store.js';
import type { PolicyBuildContext } from './types.js';
import { clusterConfig, routeConfig } from '../../../test/support/policy-fixtures.js';

const gateway = clusterConfig({ concurrency: { limit: 8 } });
const other = clusterConfig({ name: 'other' });

function buildFor(metrics: ProxyMetrics, cluster: ClusterState): void {
  const b: PolicyBuildContext = {
    clock: new FakeClock(),
    route: routeConfig({ cluster: cluster.name, retry: { attempts: 1 } }),
    cluster,
    routeState: new StateStore(),
    metrics,
    rateLimiters: () => assert.fail('no rate limit here'),
  };
  for (const build of [buildConcurrency, buildBreaker, buildRetry]) build(b);
}

async function gaugeClusters(metrics: ProxyMetrics): Promise<string[]> {
  const names = ['tsmesh_circuit_breaker_open', 'tsmesh_concurrency_limit', 'tsmesh_concurrency_in_flight', 'tsmesh_concurrency_queue_depth'];
  const all = await metrics.registry.getMetricsAsJSON();
  const out = new Set<string>();
  for (const m of all.filter((x) => names.includes(x.name))) {
    for (const v of (m as unknown as { values: { labels: Record<string, string> }[] }).values) out.add(v.labels.cluster!);
  }
  return [...out].sort();
}

test('a cluster removed by a config swap releases its scrape hooks and the gauge series they wrote', async () => {
  const metrics = new ProxyMetrics(new Registry());
  const clusters = new ClusterRegistry();
  let live = clusters.sync([gateway, other]);
  buildFor(metrics, live.get('gateway')!);
  buildFor(metrics, live.get('other')!);
  assert.equal(metrics.scrapeHookCount, 5, 'breaker, retries and concurrency for gateway; breaker and retries for other');
  assert.deepEqual(await gaugeClusters(metrics), ['gateway', 'other']);

  // A swap that keeps both clusters rebuilds the policies: the hooks are replaced, not added.
  live = clusters.sync([gateway, other]);
  buildFor(metrics, live.get('gateway')!);
  assert.equal(metrics.scrapeHookCount, 5);

  const removed = live.get('gateway')!;
  live = clusters.sync([other]);
  assert.equal(metrics.scrapeHookCount, 2, "only other's hooks are left");
  assert.deepEqual(await gaugeClusters(metrics), ['other'], 'no frozen series of the removed cluster');

  // The cluster comes back as new state; a late second release of the old state leaves the new hooks alone.
  live = clusters.sync([gateway, other]);
  assert.notEqual(live.get('gateway'), removed);
  buildFor(metrics, live.get('gateway')!);
  removed.release();
  assert.equal(metrics.scrapeHookCount, 5);
  assert.deepEqual(await gaugeClusters(metrics), ['gateway', 'other']);
});

test('a cluster that drops its concurrency limit removes that hook and its gauges', async () => {
  const metrics = new ProxyMetrics(new Registry());
  const clusters = new ClusterRegistry();
  buildFor(metrics, clusters.sync([gateway]).get('gateway')!);
  assert.equal(metrics.scrapeHookCount, 3);
  buildFor(metrics, clusters.sync([clusterConfig()]).get('gateway')!);
  assert.equal(metrics.scrapeHookCount, 2);
  const all = await metrics.registry.getMetricsAsJSON();
  const limit = all.find((m) => m.name === 'tsmesh_concurrency_limit') as unknown as { values: unknown[] };
  assert.equal(limit.values.length, 0);
});
