import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS, ProxyMetrics } from './metrics.js';
import { HotStats } from './hot-stats.js';

test('a local histogram cell exports exactly what prom-client observe() would', async () => {
  const values = [0.0001, 0.0007, 0.003, 0.003, 0.04, 0.9, 12, 50];
  const reg = new Registry();
  const reference = new Histogram({ name: 'ref_seconds', help: 'h', labelNames: ['route', 'cluster'], buckets: LATENCY_BUCKETS, registers: [reg] });
  for (const v of values) reference.observe({ route: 'r', cluster: 'c' }, v);

  const metrics = new ProxyMetrics();
  const stats = new HotStats(metrics);
  const rs = stats.route('edge', 'r', 'c');
  for (const v of values.slice(0, 4)) rs.record(200, undefined, v);
  const first = await metrics.registry.getSingleMetricAsString('tsmesh_request_duration_seconds');
  for (const v of values.slice(4)) rs.record(503, 'overloaded', v);
  const text = await metrics.registry.getSingleMetricAsString('tsmesh_request_duration_seconds');
  const refText = await reg.getSingleMetricAsString('ref_seconds');
  const samples = (t: string, name: string) =>
    t
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(name, 'X'));
  assert.deepEqual(samples(text, 'tsmesh_request_duration_seconds'), samples(refText, 'ref_seconds'));
  assert.match(first, /_count\{route="r",cluster="c"\} 4/);
  const requests = await metrics.registry.getSingleMetricAsString('tsmesh_requests_total');
  assert.match(requests, /tsmesh_requests_total\{listener="edge",route="r",cluster="c",code="200",reason="none"\} 4/);
  assert.match(requests, /tsmesh_requests_total\{listener="edge",route="r",cluster="c",code="503",reason="overloaded"\} 4/);
  // A reset of the registry is survived: later counts start from zero again.
  metrics.registry.resetMetrics();
  rs.record(200, undefined, 0.001);
  assert.match(await metrics.registry.getSingleMetricAsString('tsmesh_request_duration_seconds'), /_count\{route="r",cluster="c"\} 1/);
});
