import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateDocument } from '../../control-plane/src/document.js';
import { edgeDocument, loadTemplates, mergeDocument, sidecarDocument } from './documents.js';
import { ONE_HOST_DRAIN } from './mesh.js';

describe('demo documents', () => {
  const templates = loadTemplates();

  it('makes one sidecar document per instance from the one Kubernetes template', () => {
    const a = sidecarDocument(templates.sidecar, { node: 'gateway-1', app: '127.0.0.1:4001', sidecar: '127.0.0.1:5001' });
    const b = sidecarDocument(templates.sidecar, { node: 'gateway-2', app: '127.0.0.1:4002', sidecar: '127.0.0.1:5002' });
    assert.equal(templates.sidecar.selector, 'gateway-*');
    assert.equal(a.selector, 'gateway-1');
    assert.equal(b.selector, 'gateway-2');
    const listeners = a.listeners as Array<{ address: string; routes: unknown[] }>;
    assert.equal(listeners[0]!.address, '127.0.0.1:5001');
    assert.deepEqual((a.clusters as Array<{ endpoints: string[] }>)[0]!.endpoints, ['127.0.0.1:4001']);
    assert.deepEqual((b.clusters as Array<{ endpoints: string[] }>)[0]!.endpoints, ['127.0.0.1:4002']);
    // Everything else is the template's: the policies are the same in both places.
    assert.deepEqual(listeners[0]!.routes, (templates.sidecar.listeners as Array<{ routes: unknown[] }>)[0]!.routes);
    assert.deepEqual((a.clusters as Array<{ concurrency: unknown }>)[0]!.concurrency, (templates.sidecar.clusters as Array<{ concurrency: unknown }>)[0]!.concurrency);
    // The template itself is untouched.
    assert.equal(templates.sidecar.selector, 'gateway-*');
  });

  it('points the edge at the sidecars and at Redis only when there is one', () => {
    const sidecars = ['127.0.0.1:5001', '127.0.0.1:5002'];
    const withRedis = edgeDocument(templates.edge, { node: 'edge', listen: '127.0.0.1:8080' }, sidecars, 'redis://127.0.0.1:6390');
    assert.equal(withRedis.selector, 'edge');
    assert.equal((withRedis.listeners as Array<{ address: string }>)[0]!.address, '127.0.0.1:8080');
    assert.deepEqual((withRedis.clusters as Array<{ endpoints: string[] }>)[0]!.endpoints, sidecars);
    assert.deepEqual(withRedis.redis, { url: 'redis://127.0.0.1:6390' });
    const local = edgeDocument(templates.edge, { node: 'edge', listen: '127.0.0.1:8080' }, sidecars);
    assert.equal(local.redis, undefined);
  });

  it('produces documents the control plane accepts', () => {
    const docs = [
      mergeDocument(sidecarDocument(templates.sidecar, { node: 'gateway-1', app: '127.0.0.1:4001', sidecar: '127.0.0.1:5001' }), ONE_HOST_DRAIN),
      mergeDocument(edgeDocument(templates.edge, { node: 'edge', listen: '127.0.0.1:8080' }, ['127.0.0.1:5001']), ONE_HOST_DRAIN),
      edgeDocument(templates.edge, { node: 'edge', listen: '127.0.0.1:8080' }, ['127.0.0.1:5001'], 'redis://127.0.0.1:6379'),
    ];
    for (const d of docs) {
      const r = validateDocument(d);
      assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    }
  });

  it('merges patches: objects by key, named lists by name, null removes', () => {
    const doc = {
      listeners: [{ name: 'a', address: 'x', routes: [{ name: 'r1', timeout: '1s' }, { name: 'r2', timeout: '2s' }] }],
      accessLog: { enabled: true, sampleRate: 0.1 },
      redis: { url: 'redis://r' },
      list: [1, 2],
    };
    const out = mergeDocument(doc, {
      listeners: [{ name: 'a', routes: [{ name: 'r2', timeout: '5s' }, { name: 'r3', timeout: '3s' }] }],
      accessLog: { enabled: false },
      redis: null,
      list: [3],
    });
    assert.deepEqual(out, {
      listeners: [{ name: 'a', address: 'x', routes: [{ name: 'r1', timeout: '1s' }, { name: 'r2', timeout: '5s' }, { name: 'r3', timeout: '3s' }] }],
      accessLog: { enabled: false, sampleRate: 0.1 },
      list: [3],
    });
    // The input is not changed.
    assert.equal(doc.accessLog.enabled, true);
    assert.equal(doc.listeners[0]!.routes[1]!.timeout, '2s');
  });

  it('says what is wrong with a template it cannot use', () => {
    assert.throws(() => sidecarDocument({ selector: 'x', listeners: [], clusters: [] }, { node: 'gateway-1', app: 'a:1', sidecar: 'b:2' }), /exactly one entry in listeners/);
  });
});
