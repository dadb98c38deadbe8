import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudgetRule, RetryWindow, retryWindowOf } from './retry-budget.js';
import { ClusterState } from '../upstream/cluster-state.js';
import { clusterConfig } from '../../../test/support/policy-fixtures.js';

test('the window counts first tries and retries of the last 10 s and forgets older buckets', () => {
  const w = new RetryWindow();
  const t0 = 1000;
  for (let i = 0; i < 10; i++) {
    w.recordFirstTry(t0 + i * 1000);
    if (i === 0) w.recordRetry(t0 + 50);
    if (i === 5) w.recordRetry(t0 + 5000);
  }
  assert.equal(w.firstTriesAt(t0 + 9999), 10);
  assert.equal(w.retriesAt(t0 + 9999), 2);
  // The bucket of t0 (100 ms wide) leaves the window 10 s after it began.
  assert.equal(w.firstTriesAt(t0 + 10_000), 9);
  assert.equal(w.retriesAt(t0 + 10_000), 1);
  assert.equal(w.retriesAt(t0 + 15_000), 0);
  assert.equal(w.firstTriesAt(t0 + 15_000), 4);
  // A gap longer than the window clears everything.
  assert.equal(w.firstTriesAt(t0 + 60_000), 0);
  w.recordFirstTry(t0 + 60_001);
  assert.equal(w.firstTriesAt(t0 + 60_002), 1);
  // Reading an earlier time than the newest bucket does not go back.
  assert.equal(w.firstTriesAt(t0), 1);
});

test('percent is the share of retries among all attempts: 20 allows 0.25 retries per first try', () => {
  assert.equal(new RetryBudgetRule(20, 3).ratio, 0.25);
  assert.equal(new RetryBudgetRule(50, 3).ratio, 1);
  assert.equal(new RetryBudgetRule(0, 3).ratio, 0);
  assert.equal(new RetryBudgetRule(100, 3).ratio, Number.POSITIVE_INFINITY);

  const noFloor = new RetryBudgetRule(20, 0);
  const w = new RetryWindow();
  for (let i = 0; i < 100; i++) w.recordFirstTry(1000);
  for (let i = 0; i < 24; i++) w.recordRetry(1000);
  assert.equal(noFloor.allows(w, 0, 1000), true, '24 retries < 25 % of 100 first tries');
  w.recordRetry(1000);
  assert.equal(noFloor.allows(w, 0, 1000), false, '25 retries: the ratio is spent');
  assert.equal(new RetryBudgetRule(100, 0).allows(w, 1000, 1000), true, '100 %: no budget');
});

test('at low traffic the floor grants while fewer than minConcurrent retries are in flight and fewer than minConcurrent x 10 s in the window', () => {
  const rule = new RetryBudgetRule(20, 3);
  const w = new RetryWindow();
  for (let i = 0; i < 20; i++) w.recordFirstTry(1000);
  for (let i = 0; i < 5; i++) w.recordRetry(1000);
  assert.equal(rule.allows(w, 2, 1000), true, 'ratio spent (5 of 5), 2 in flight < 3');
  assert.equal(rule.allows(w, 3, 1000), false, '3 in flight: the floor is full');
  for (let i = 0; i < 24; i++) w.recordRetry(1000);
  assert.equal(rule.allows(w, 0, 1000), true, '29 retries in the window < 30');
  w.recordRetry(1000);
  assert.equal(rule.allows(w, 0, 1000), false, '30 retries: the floor is spent for this window');
  assert.equal(rule.allows(w, 0, 11_000), true, 'until the window moves on');
});

test('at high traffic the floor adds nothing to the ratio: a failing cluster stays at 1.25 attempts per request', () => {
  const rule = new RetryBudgetRule(20, 3);
  const w = new RetryWindow();
  for (let i = 0; i < 1000; i++) w.recordFirstTry(1000);
  for (let i = 0; i < 249; i++) w.recordRetry(1000);
  assert.equal(rule.allows(w, 0, 1000), true, '249 < 250 by the ratio');
  w.recordRetry(1000);
  assert.equal(rule.allows(w, 0, 1000), false, '250 = 0.25 x 1000: no floor on top, even with nothing in flight');
});

test('the window belongs to the cluster state and survives a config swap', () => {
  const cluster = new ClusterState(clusterConfig());
  const w = retryWindowOf(cluster);
  w.recordFirstTry(1000);
  cluster.update(clusterConfig({ endpoints: ['127.0.0.1:9001'] }));
  assert.equal(retryWindowOf(cluster), w);
  assert.equal(retryWindowOf(cluster).firstTriesAt(1000), 1);
});
