import { test } from 'node:test';
import assert from 'node:assert/strict';
import { route as routeSchema } from './config/schema.js';
import { Router, normaliseHost } from './router.js';

const req = (method: string, host: string, path: string, headers: Record<string, string> = {}) => ({
  method,
  host,
  path,
  header: (n: string) => headers[n],
});

test('normaliseHost strips the port and lower-cases', () => {
  assert.equal(normaliseHost('API.Example.com:8080'), 'api.example.com');
  assert.equal(normaliseHost('[::1]:80'), '[::1]');
  assert.equal(normaliseHost('plain'), 'plain');
});

test('first match wins; weighted targets follow the cumulative weights', () => {
  const routes = [
    routeSchema.parse({ name: 'a', match: { path: { prefix: '/api' } }, cluster: 'x' }),
    routeSchema.parse({ name: 'b', match: { path: { prefix: '/' } }, clusters: [{ name: 'x', weight: 1 }, { name: 'y', weight: 3 }, { name: 'z', weight: 0 }] }),
  ];
  let r = 0;
  const values = [0, 0.24, 0.26, 0.99];
  const router = new Router(routes, (route, cluster) => `${route.name}:${cluster}`, () => values[r++]!);
  const api = router.match(req('GET', 'h', '/api/x'))!;
  assert.equal(api.config.name, 'a');
  const rest = router.match(req('GET', 'h', '/other'))!;
  assert.equal(rest.config.name, 'b');
  assert.deepEqual(values.map(() => router.pick(rest)), ['b:x', 'b:x', 'b:y', 'b:y']);
  assert.equal(rest.targets.length, 2, 'a zero weight never gets traffic');
});

test('header matches: exact, regex (whole value), present, invert', () => {
  const routes = [
    routeSchema.parse({ name: 'exact', match: { headers: [{ name: 'X-A', exact: 'v' }] }, cluster: 'c' }),
    routeSchema.parse({ name: 'regex', match: { headers: [{ name: 'x-a', regex: 'v[0-9]' }] }, cluster: 'c' }),
    routeSchema.parse({ name: 'not-b', match: { headers: [{ name: 'x-b', present: true, invert: true }] }, cluster: 'c' }),
    routeSchema.parse({ name: 'rest', match: {}, cluster: 'c' }),
  ];
  const router = new Router(routes, () => 0);
  const name = (h: Record<string, string>) => router.match(req('GET', 'h', '/', h))!.config.name;
  assert.equal(name({ 'x-a': 'v' }), 'exact');
  assert.equal(name({ 'x-a': 'v7' }), 'regex');
  assert.equal(name({ 'x-a': 'v77', 'x-b': '1' }), 'rest');
  assert.equal(name({ 'x-a': 'w' }), 'not-b');
});

test('no match gives undefined (404 no_route)', () => {
  const router = new Router([routeSchema.parse({ name: 'r', match: { path: { exact: '/only' }, methods: ['GET'] }, cluster: 'c' })], () => 0);
  assert.equal(router.match(req('POST', 'h', '/only')), undefined);
  assert.equal(router.match(req('GET', 'h', '/only/')), undefined);
  assert.ok(router.match(req('GET', 'h', '/only')));
});
