import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfigText } from './load.js';
import { formatDuration, parseDuration, parseHostPort, parseSize } from './units.js';

const example = readFileSync(new URL('../../../../examples/configs/edge.yaml', import.meta.url), 'utf8');

test('the example config of the core issue validates, with durations in ms and defaults filled', () => {
  const r = parseConfigText(example);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  const cfg = r.value;
  assert.equal(cfg.listeners[0]!.routes[1]!.timeout, 2000);
  assert.equal(cfg.clusters[0]!.connectTimeout, 250);
  assert.equal(cfg.clusters[0]!.pool.idleTimeout, 30_000);
  assert.equal(cfg.clusters[0]!.circuitBreaker.maxRetries, 3);
  assert.equal(cfg.admin.address, '127.0.0.1:15000');
});

test('every problem is listed, by path with item names', () => {
  const r = parseConfigText(`
listeners:
  - name: edge
    address: 127.0.0.1:99999
    routes:
      - name: query
        match: { path: { prefix: api } }
        cluster: missing
        timout: 2s
        retry: { attempts: -1, perTryTimeout: 5 parsecs }
clusters:
  - name: gateway
    endpoints: []
    loadBalancer: random
  - name: gateway
    endpoints: [127.0.0.1:1]
`);
  assert.equal(r.ok, false);
  const errors = r.ok ? [] : r.errors;
  const expected = [
    'listeners.edge.address: must be an address like 127.0.0.1:8080 (got "127.0.0.1:99999")',
    'listeners.edge.routes.query.match.path.prefix: must start with /',
    'listeners.edge.routes.query.timout: unknown field',
    'listeners.edge.routes.query.retry.attempts: must be an integer from 0 to 10',
    'listeners.edge.routes.query.retry.perTryTimeout: must be a duration like 250ms, 2s or 1m (got "5 parsecs")',
    'clusters.gateway.endpoints: must list at least one endpoint',
    'clusters.gateway.loadBalancer: must be one of round-robin, least-request, peak-ewma',
    'clusters.gateway: duplicate cluster name',
    'listeners.edge.routes.query.cluster: unknown cluster "missing"',
  ];
  for (const e of expected) assert.ok(errors.includes(e), `missing "${e}" in:\n${errors.join('\n')}`);
});

test('YAML syntax errors carry line and column', () => {
  const r = parseConfigText('listeners:\n  - name: a\n   bad: [', 'f.yaml');
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.errors[0]!, /^f\.yaml:\d+:\d+: /);
});

test('cross checks: weights, route names, exactly one of cluster/clusters, empty config', () => {
  const r = parseConfigText(`
listeners:
  - name: a
    address: 127.0.0.1:0
    routes:
      - { name: r1, cluster: c, clusters: [{ name: c, weight: 1 }] }
      - { name: r2, clusters: [{ name: c, weight: 0 }] }
  - name: b
    address: 127.0.0.1:0
    routes:
      - { name: r1, cluster: c }
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
`);
  assert.equal(r.ok, false);
  const errors = r.ok ? [] : r.errors;
  assert.ok(errors.includes('listeners.a.routes.r1: must have exactly one of cluster or clusters'), errors.join('\n'));
  assert.ok(errors.includes('listeners.a.routes.r2.clusters: weights must add up to more than 0'), errors.join('\n'));
  assert.ok(errors.includes('listeners.b.routes.r1: duplicate route name (route names are unique across listeners)'), errors.join('\n'));
  const empty = parseConfigText('{}');
  assert.deepEqual(empty.ok ? [] : empty.errors, ['listeners: a config needs at least one listener, or a controlPlane to take them from']);
});

test('units', () => {
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('2 s'), undefined);
  assert.equal(formatDuration(90_000), '90s');
  const zero = parseConfigText('listeners: [{ name: l, address: "127.0.0.1:0", routes: [] }]\ndrain: { delay: 0 }');
  assert.ok(zero.ok && zero.value.drain.delay === 0, zero.ok ? '' : zero.errors.join('\n'));
  assert.equal(parseSize('64KiB'), 65536);
  assert.equal(parseSize('10MB'), 10_000_000);
  assert.equal(parseSize('1.5MB'), undefined);
  assert.deepEqual(parseHostPort('[::1]:8080'), { host: '::1', port: 8080 });
  assert.equal(parseHostPort('localhost'), undefined);
});
