import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { FakeClock } from '../clock.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import { ClusterState } from './cluster-state.js';
import { OutlierDetector, outlierDetectorOf } from './outlier.js';
import { clusterConfig, metricValue } from '../../../test/support/policy-fixtures.js';

function setup(outlier: Record<string, unknown> = {}, endpoints = ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003']) {
  const clock = new FakeClock(0);
  const metrics = new ProxyMetrics(new Registry());
  const cluster = new ClusterState(clusterConfig({ endpoints, outlierDetection: { consecutiveFailures: 3, baseEjectionTime: '10s', maxEjectionTime: '35s', ...outlier } }));
  const detector = new OutlierDetector(cluster, metrics);
  const fail = (i: number, n = 1) => {
    for (let k = 0; k < n; k++) detector.record(cluster.endpoints[i]!, 'failure', clock.now());
  };
  return { clock, metrics, cluster, detector, fail, ep: (i: number) => cluster.endpoints[i]! };
}

test('consecutive failures eject an endpoint for baseEjectionTime; a success in between resets the count', async () => {
  const { clock, metrics, detector, fail, ep } = setup();
  fail(0, 2);
  detector.record(ep(0), 'success', clock.now());
  fail(0, 2);
  assert.ok(ep(0).available(clock.now()), 'two failures after a success are not three in a row');
  detector.record(ep(0), 'neutral', clock.now());
  fail(0, 1);
  assert.equal(ep(0).available(clock.now()), false, 'a neutral result (client gone) does not reset the count');
  assert.equal(ep(0).ejectedUntil, 10_000);
  assert.equal(await metricValue(metrics, 'tsmesh_outlier_ejections_total', { cluster: 'gateway', endpoint: '127.0.0.1:9001' }), 1);
  assert.equal(await metricValue(metrics, 'tsmesh_endpoint_ejected', { cluster: 'gateway', endpoint: '127.0.0.1:9001' }), 1);
  clock.advance(9_999);
  assert.equal(ep(0).available(clock.now()), false);
  clock.advance(1);
  assert.ok(ep(0).available(clock.now()), 'the ejection ends by itself: no timer needed');
});

test('the endpoint returns through a single probe: success readmits it', async () => {
  const { clock, metrics, detector, fail, ep } = setup();
  fail(0, 3);
  clock.advance(10_000);
  assert.ok(ep(0).probing);
  ep(0).picked();
  assert.equal(ep(0).available(clock.now()), false, 'while the probe is in flight no other request goes there');
  detector.record(ep(0), 'success', clock.now());
  assert.equal(ep(0).probing, false);
  assert.ok(ep(0).available(clock.now()));
  ep(0).picked();
  assert.ok(ep(0).available(clock.now()), 'once back, picking it closes nothing');
  assert.equal(await metricValue(metrics, 'tsmesh_endpoint_ejected', { cluster: 'gateway', endpoint: '127.0.0.1:9001' }), 0);
});

test('a failed probe ejects again for longer, up to maxEjectionTime', () => {
  const { clock, detector, fail, ep } = setup();
  fail(0, 3);
  const durations: number[] = [];
  for (let i = 0; i < 5; i++) {
    durations.push(ep(0).ejectedUntil - clock.now());
    clock.advance(ep(0).ejectedUntil - clock.now());
    ep(0).picked();
    detector.record(ep(0), 'failure', clock.now());
  }
  assert.deepEqual(durations, [10_000, 20_000, 30_000, 35_000, 35_000]);
  assert.equal(ep(0).ejections, 4, 'the multiplier stops growing at the cap');
});

test('a neutral probe result releases the probe without a verdict', () => {
  const { clock, detector, fail, ep } = setup();
  fail(0, 3);
  clock.advance(10_000);
  ep(0).picked();
  detector.record(ep(0), 'neutral', clock.now());
  assert.ok(ep(0).probing);
  assert.ok(ep(0).available(clock.now()), 'the next request may probe');
});

test('answers to requests sent before the ejection neither extend nor end it', () => {
  const { clock, detector, fail, ep } = setup();
  fail(0, 3);
  const until = ep(0).ejectedUntil;
  clock.advance(100);
  fail(0, 5);
  detector.record(ep(0), 'success', clock.now());
  assert.equal(ep(0).ejectedUntil, until);
  assert.ok(ep(0).probing);
});

test('never more than maxEjectionPercent of the endpoints are ejected', () => {
  {
    const { clock, fail, ep, detector } = setup({ maxEjectionPercent: 50 });
    fail(0, 3);
    fail(1, 3);
    fail(2, 3);
    assert.equal(detector.ejectedCount(clock.now()), 1, '3 endpoints at 50 %: one');
    assert.ok(ep(1).available(clock.now()) && ep(2).available(clock.now()));
    assert.equal(ep(1).consecutiveFailures, 3, 'the outlier stays in and keeps counting');
    clock.advance(10_000);
    ep(0).picked();
    detector.record(ep(0), 'success', clock.now());
    fail(1, 1);
    assert.equal(ep(1).available(clock.now()), false, 'once room is free the next failure ejects it');
  }
  {
    const { clock, fail, detector } = setup({ maxEjectionPercent: 50 }, ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4']);
    for (let i = 0; i < 4; i++) fail(i, 3);
    assert.equal(detector.ejectedCount(clock.now()), 2, '4 endpoints at 50 %: two');
  }
  {
    const { clock, fail, detector } = setup({ maxEjectionPercent: 100 });
    for (let i = 0; i < 3; i++) fail(i, 3);
    assert.equal(detector.ejectedCount(clock.now()), 3, 'at 100 % all may go (the balancer then panics to all)');
  }
});

test('a failed probe that would exceed the percentage leaves the endpoint on probation', () => {
  const { clock, detector, fail, ep } = setup({ maxEjectionPercent: 34 });
  fail(0, 3);
  clock.advance(10_000);
  fail(1, 3);
  assert.equal(ep(1).available(clock.now()), false);
  ep(0).picked();
  detector.record(ep(0), 'failure', clock.now());
  assert.ok(ep(0).probing);
  assert.ok(ep(0).available(clock.now()), 'one request at a time may still try it');
  assert.equal(detector.ejectedCount(clock.now()), 1);
});

test('the ejection multiplier decays after quiet time back in the cluster', () => {
  const { clock, detector, fail, ep } = setup({ maxEjectionTime: '300s' });
  const ejectAndReturn = () => {
    fail(0, 3);
    const d = ep(0).ejectedUntil - clock.now();
    clock.advance(d);
    ep(0).picked();
    detector.record(ep(0), 'success', clock.now());
    return d;
  };
  assert.equal(ejectAndReturn(), 10_000);
  assert.equal(ejectAndReturn(), 20_000);
  assert.equal(ejectAndReturn(), 30_000);
  clock.advance(20_000); // two base periods without trouble: two ejections forgotten
  assert.equal(ejectAndReturn(), 20_000);
  clock.advance(1_000_000);
  assert.equal(ejectAndReturn(), 10_000);
});

test('the detector is the cluster state: a config swap keeps ejections and takes the new thresholds', () => {
  const { clock, cluster, metrics, fail, ep } = setup();
  const d1 = outlierDetectorOf(cluster, metrics);
  d1.record(ep(0), 'failure', clock.now());
  d1.record(ep(0), 'failure', clock.now());
  d1.record(ep(0), 'failure', clock.now());
  cluster.update(clusterConfig({ outlierDetection: { consecutiveFailures: 1, baseEjectionTime: '10s', maxEjectionPercent: 100 } }));
  const d2 = outlierDetectorOf(cluster, metrics);
  assert.equal(d1, d2);
  assert.equal(ep(0).available(clock.now()), false, 'still ejected after the swap');
  d2.record(ep(1), 'failure', clock.now());
  assert.equal(ep(1).available(clock.now()), false, 'the new threshold (1 failure) applies');
  void fail;
});
