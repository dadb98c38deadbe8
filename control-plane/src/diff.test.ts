import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffDocuments, formatChanges } from './diff.js';

test('changes are listed by path with item names; reordering named items is a change', () => {
  const a = {
    selector: 'gateway-*',
    listeners: [{ name: 'edge', address: '127.0.0.1:1', routes: [{ name: 'a', cluster: 'g', timeout: '2s' }, { name: 'b', cluster: 'g' }] }],
    clusters: [{ name: 'g', endpoints: ['127.0.0.1:2'] }],
  };
  const b = {
    selector: 'gateway-*',
    listeners: [{ name: 'edge', address: '127.0.0.1:1', routes: [{ name: 'b', cluster: 'g' }, { name: 'a', cluster: 'g', timeout: '3s' }] }],
    clusters: [{ name: 'g', endpoints: ['127.0.0.1:2', '127.0.0.1:3'] }, { name: 'h', endpoints: ['127.0.0.1:4'] }],
  };
  assert.deepEqual(formatChanges(diffDocuments(a, b)), [
    '~ listeners.edge.routes.a.timeout: 2s -> 3s',
    '~ listeners.edge.routes (order): ["a","b"] -> ["b","a"]',
    '~ clusters.g.endpoints: ["127.0.0.1:2"] -> ["127.0.0.1:2","127.0.0.1:3"]',
    '+ clusters.h: {"name":"h","endpoints":["127.0.0.1:4"]}',
  ]);
  assert.deepEqual(diffDocuments(a, a), []);
  assert.deepEqual(formatChanges(diffDocuments(b, a)).at(-1), '- clusters.h: {"name":"h","endpoints":["127.0.0.1:4"]}');
});
