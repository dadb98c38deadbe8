import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StateRegistry, StateStore } from './state-store.js';
import { ClusterRegistry } from '../upstream/cluster-state.js';
import { clusterConfig } from '../../../test/support/policy-fixtures.js';

function disposable() {
  const d = { disposed: 0, dispose: () => void d.disposed++ };
  return d;
}

test('drop and release dispose the states that can be disposed, once', () => {
  const store = new StateStore();
  const a = store.stateOf('a', disposable);
  const b = store.stateOf('b', disposable);
  const plain = store.stateOf('plain', () => ({ release: () => assert.fail('release() is not dispose()') }));
  store.drop('a');
  assert.equal(a.disposed, 1);
  assert.notEqual(store.stateOf('a', disposable), a, 'a dropped state starts anew');
  store.release();
  assert.equal(b.disposed, 1);
  store.release();
  assert.equal(b.disposed, 1);
  assert.notEqual(store.stateOf('plain', () => ({})), plain);
});

test('StateRegistry.retain releases the stores of owners that are gone and keeps the others', () => {
  const routes = new StateRegistry();
  const kept = routes.of('kept').stateOf('rate-limit', disposable);
  const gone = routes.of('gone').stateOf('rate-limit', disposable);
  routes.retain(['kept']);
  assert.equal(gone.disposed, 1);
  assert.equal(kept.disposed, 0);
  assert.equal(routes.of('kept').stateOf('rate-limit', disposable), kept);
  assert.notEqual(routes.of('gone').stateOf('rate-limit', disposable), gone);
});

test('ClusterRegistry.sync releases removed clusters: disposable policy state is disposed, the rest kept as it was', () => {
  const clusters = new ClusterRegistry();
  const state = clusters.sync([clusterConfig(), clusterConfig({ name: 'other' })]).get('gateway')!;
  const hooks = state.stateOf('scrape-hooks', disposable);
  // The concurrency state has a release(...) of its own (a slot); it must never be called here.
  const slots = state.stateOf('concurrency', () => ({ release: () => assert.fail('a slot released by a config swap') }));
  clusters.sync([clusterConfig(), clusterConfig({ name: 'other' })]);
  assert.equal(hooks.disposed, 0, 'a cluster that stays is not released');
  clusters.sync([clusterConfig({ name: 'other' })]);
  assert.equal(hooks.disposed, 1);
  assert.equal(state.stateOf('concurrency', () => assert.fail()), slots, 'requests still finishing on the old snapshot keep their state');
  assert.equal(clusters.get('gateway'), undefined);
});
