import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { ClusterState } from './cluster-state.js';
import { HealthCheckManager } from './health-check.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import { FaultUpstream, startFaultUpstreams } from '../../../test/support/fault-upstream.js';
import { waitFor } from '../../../test/support/servers.js';
import { clusterConfig, metricValue } from '../../../test/support/policy-fixtures.js';

// Short intervals for speed; a generous timeout so a loaded machine does not fail healthy probes.
const fastChecks = { path: '/health', interval: '20ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 };

async function withUpstreams(n: number, fn: (ups: FaultUpstream[]) => Promise<void>): Promise<void> {
  const ups = await startFaultUpstreams(n, { prefix: 'hc' });
  try {
    await fn(ups);
  } finally {
    await Promise.all(ups.map((u) => u.close()));
  }
}

test('an endpoint whose health check fails leaves the balancer after unhealthyThreshold checks, and returns after healthyThreshold', async () => {
  await withUpstreams(2, async (ups) => {
    const metrics = new ProxyMetrics(new Registry());
    const cluster = new ClusterState(clusterConfig({ endpoints: ups.map((u) => u.address), healthCheck: fastChecks }));
    const manager = new HealthCheckManager({ metrics });
    try {
      manager.sync([cluster]);
      const [a, b] = cluster.endpoints;
      await waitFor('first checks', async () => ups[0]!.stats.healthChecks >= 2 && ups[1]!.stats.healthChecks >= 2, 5000);
      assert.ok(a!.healthy && b!.healthy);

      ups[0]!.set({ health: 'fail' });
      const checksBefore = ups[0]!.stats.healthChecks;
      await waitFor('a unhealthy', async () => !a!.healthy, 5000);
      assert.ok(ups[0]!.stats.healthChecks - checksBefore >= 2, 'not before two failures in a row');
      assert.equal(a!.available(0), false, 'the balancer gate is closed');
      assert.ok(b!.healthy);
      assert.equal(await metricValue(metrics, 'tsmesh_endpoint_healthy', { cluster: 'gateway', endpoint: a!.address }), 0);
      assert.ok((await metricValue(metrics, 'tsmesh_health_checks_total', { cluster: 'gateway', endpoint: a!.address, result: 'failure' })) >= 2);

      ups[0]!.set({ health: 'ok' });
      await waitFor('a healthy again', async () => a!.healthy, 5000);
      assert.equal(await metricValue(metrics, 'tsmesh_endpoint_healthy', { cluster: 'gateway', endpoint: a!.address }), 1);
      assert.equal(ups[0]!.stats.requests, 0, 'health checks are not requests');
    } finally {
      manager.stop();
    }
  });
});

test('a killed endpoint fails its checks (connection refused), a hanging one times out; both come back', async () => {
  await withUpstreams(2, async (ups) => {
    const metrics = new ProxyMetrics(new Registry());
    const cluster = new ClusterState(clusterConfig({ endpoints: ups.map((u) => u.address), healthCheck: fastChecks }));
    const manager = new HealthCheckManager({ metrics });
    try {
      manager.sync([cluster]);
      const [a, b] = cluster.endpoints;
      await ups[0]!.kill();
      ups[1]!.set({ health: 'hang' });
      await waitFor('both unhealthy', async () => !a!.healthy && !b!.healthy, 5000);
      assert.ok((await metricValue(metrics, 'tsmesh_health_checks_total', { cluster: 'gateway', endpoint: b!.address, result: 'timeout' })) >= 2);
      await ups[0]!.restart();
      ups[1]!.set({ health: 'ok' });
      await waitFor('both healthy', async () => a!.healthy && b!.healthy, 5000);
    } finally {
      manager.stop();
    }
  });
});

test('the manager follows config snapshots: reconfigures in place, stops checkers of clusters gone or unchecked and restores their endpoints', async () => {
  await withUpstreams(1, async (ups) => {
    const cluster = new ClusterState(clusterConfig({ endpoints: [ups[0]!.address], healthCheck: fastChecks }));
    const manager = new HealthCheckManager();
    try {
      manager.sync([cluster]);
      const checker = manager.checkerOf('gateway')!;
      ups[0]!.set({ health: 'fail' });
      await waitFor('unhealthy', async () => !cluster.endpoints[0]!.healthy, 5000);

      // A new snapshot with other settings: same checker, verdict kept, new path used.
      cluster.update(clusterConfig({ endpoints: [ups[0]!.address], healthCheck: { ...fastChecks, path: '/other' } }));
      manager.sync([cluster]);
      assert.equal(manager.checkerOf('gateway'), checker);
      assert.equal(checker.settings.path, '/other');
      assert.equal(cluster.endpoints[0]!.healthy, false);
      const recent = () => ups[0]!.stats.requests;
      await waitFor('checks on the new path', async () => recent() > 0, 5000);

      // The health check removed: the checker stops and the endpoint is healthy again.
      cluster.update(clusterConfig({ endpoints: [ups[0]!.address] }));
      manager.sync([cluster]);
      assert.equal(manager.checkerOf('gateway'), undefined);
      assert.equal(cluster.endpoints[0]!.healthy, true);
      const rounds = checker.rounds;
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(checker.rounds <= rounds + 1, 'no more rounds after stop');

      // Back again, then the cluster removed from the config altogether.
      cluster.update(clusterConfig({ endpoints: [ups[0]!.address], healthCheck: fastChecks }));
      manager.sync([cluster]);
      assert.ok(manager.checkerOf('gateway'));
      manager.sync([]);
      assert.equal(manager.checkerOf('gateway'), undefined);
    } finally {
      manager.stop();
    }
  });
});
