import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadBootstrapFile, loadProxyFile } from './bootstrap.js';

test('a bootstrap file is admin + controlPlane; listeners written there are reported', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-boot-'));
  try {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'admin: { address: 127.0.0.1:15000 }\ncontrolPlane: { address: 127.0.0.1:15010, node: gateway-1, token: T, cacheDir: /var/lib/tsmesh }\n');
    const r = await loadBootstrapFile(good);
    assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    assert.equal(r.value.controlPlane?.node, 'gateway-1');

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'controlPlane: { address: 127.0.0.1:15010, node: gateway-1 }\nlisteners:\n  - { name: edge, address: 127.0.0.1:8080 }\n');
    const b = await loadBootstrapFile(bad);
    assert.equal(b.ok, false);
    assert.deepEqual(b.ok ? [] : b.errors, ['listeners: comes from the control plane; remove it from the bootstrap file (or remove controlPlane to run from this file alone)']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flags fill or override the bootstrap controlPlane block; a missing node names its flag', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-boot-'));
  try {
    const file = join(dir, 'boot.yaml');
    writeFileSync(file, 'admin: { address: 0.0.0.0:15000 }\ncontrolPlane:\n  address: cp:15010\n  cacheDir: /var/lib/tsmesh\n');
    const missing = await loadProxyFile(file);
    assert.deepEqual(missing.ok ? [] : missing.errors, ['controlPlane.node: is required (in the file, or with --node)']);

    const r = await loadProxyFile(file, { node: 'edge-7f9c', token: 'T', address: undefined, cacheDir: '' });
    assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    assert.equal(r.value.kind, 'bootstrap');
    assert.deepEqual(r.value.config.controlPlane, { address: 'cp:15010', node: 'edge-7f9c', token: 'T', cacheDir: '/var/lib/tsmesh' });

    writeFileSync(file, 'controlPlane: { address: cp:15010, node: from-file, token: file-token }\n');
    const over = await loadProxyFile(file, { node: 'from-flag', token: 'flag-token', address: '10.0.0.1:15010', cacheDir: '/tmp/c' });
    assert.ok(over.ok);
    assert.deepEqual(over.value.config.controlPlane, { address: '10.0.0.1:15010', node: 'from-flag', token: 'flag-token', cacheDir: '/tmp/c' });

    // --control-plane alone makes an admin-only file a bootstrap.
    writeFileSync(file, 'admin: { address: 127.0.0.1:15000 }\n');
    const byFlag = await loadProxyFile(file, { address: '127.0.0.1:15010', node: 'n-1' });
    assert.ok(byFlag.ok);
    assert.equal(byFlag.value.kind, 'bootstrap');
    // Without controlPlane or --control-plane it is a static config (--node only names the proxy).
    const alone = await loadProxyFile(file, { node: 'n-1', token: 'T' });
    assert.deepEqual(alone.ok ? [] : alone.errors, ['listeners: a config needs at least one listener, or a controlPlane to take them from']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Kubernetes examples\' bootstraps (no node: the pod passes --node $(POD_NAME)) are valid', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-boot-'));
  try {
    const deploy = fileURLToPath(new URL('../../../../examples/deploy/', import.meta.url));
    let checked = 0;
    for (const name of readdirSync(deploy).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(readFileSync(join(deploy, name), 'utf8'))) {
        const obj = doc.toJS() as { kind?: string; data?: Record<string, string> } | null;
        const text = obj?.kind === 'ConfigMap' ? obj.data?.['bootstrap.yaml'] : undefined;
        if (text === undefined) continue;
        const file = join(dir, `${name}.bootstrap.yaml`);
        writeFileSync(file, text);
        const r = await loadProxyFile(file, { node: 'pod-0', token: 'from-secret' });
        assert.ok(r.ok, `${name}: ${r.ok ? '' : r.errors.join('; ')}`);
        assert.equal(r.value.kind, 'bootstrap');
        assert.equal(r.value.config.controlPlane?.node, 'pod-0');
        checked++;
      }
    }
    assert.ok(checked >= 2, `${checked} bootstraps found under examples/deploy`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
