import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamedPart, validateDocument } from './document.js';

const good = `
selector: gateway-*
admin: { address: 127.0.0.1:15000 }
listeners:
  - name: edge
    address: 127.0.0.1:8080
    routes: [{ name: all, match: { path: { prefix: / } }, cluster: gateway }]
clusters: [{ name: gateway, endpoints: [127.0.0.1:9001] }]
`;

test('a document is the proxy config plus a selector; admin and controlPlane are not streamed', () => {
  const r = validateDocument(good);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.equal(r.value.selector, 'gateway-*');
  assert.deepEqual(Object.keys(streamedPart(r.value.document)), ['listeners', 'clusters']);
});

test('every problem is listed by path, the missing selector included', () => {
  const r = validateDocument(`
listeners:
  - name: edge
    address: 127.0.0.1:8080
    routes: [{ name: all, cluster: nowhere, timeout: soon }]
clusters: [{ name: gateway, endpoints: [] }]
`);
  assert.equal(r.ok, false);
  const errors = r.ok ? [] : r.errors;
  for (const e of [
    'selector: is required',
    'listeners.edge.routes.all.timeout: must be a duration like 250ms, 2s or 1m (got "soon")',
    'clusters.gateway.endpoints: must list at least one endpoint',
    'listeners.edge.routes.all.cluster: unknown cluster "nowhere"',
  ]) {
    assert.ok(errors.includes(e), `missing "${e}" in:\n${errors.join('\n')}`);
  }
  const bad = validateDocument('selector: "gate way"\nlisteners: [');
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.errors[0]!, /^document:\d+:\d+: /);
});

test('a value that would not reach the proxy as written is refused at apply', () => {
  const r = validateDocument(good.replace('cluster: gateway }]', 'cluster: gateway, retry: { on: [] } }]'));
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.errors[0]!, /^listeners\.edge\.routes\.all\.retry\.on: cannot be streamed as written/);
});
