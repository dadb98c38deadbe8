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

test('request and attempt counts add up across runs of one outcome, interleaved outcomes and scrapes', async () => {
  const metrics = new ProxyMetrics();
  const stats = new HotStats(metrics);
  const rs = stats.route('edge', 'r', 'c');
  const ep = stats.endpoint('c', '10.0.0.1:80');
  const outcomes: Array<[number, 'overloaded' | undefined]> = [[200, undefined], [200, undefined], [503, 'overloaded'], [200, undefined], [404, undefined], [404, undefined], [200, undefined]];
  const line = (code: number, reason: string, n: number) => new RegExp(`tsmesh_requests_total\\{listener="edge",route="r",cluster="c",code="${code}",reason="${reason}"\\} ${n}(\\n|$)`);
  for (const [i, [status, reason]] of outcomes.entries()) {
    rs.record(status, reason, 0.001);
    ep.record(status);
    if (i === 3) {
      // A scrape in the middle of a run: what is counted so far shows, and the run goes on from there.
      const mid = await metrics.registry.getSingleMetricAsString('tsmesh_requests_total');
      assert.match(mid, line(200, 'none', 3));
      assert.match(mid, line(503, 'overloaded', 1));
    }
  }
  const text = await metrics.registry.getSingleMetricAsString('tsmesh_requests_total');
  assert.match(text, line(200, 'none', 4));
  assert.match(text, line(503, 'overloaded', 1));
  assert.match(text, line(404, 'none', 2));
  const attempts = await metrics.registry.getSingleMetricAsString('tsmesh_upstream_attempts_total');
  assert.match(attempts, /code="200"\} 4(\n|$)/);
  assert.match(attempts, /code="404"\} 2(\n|$)/);
  assert.match(attempts, /code="503"\} 1(\n|$)/);
});
