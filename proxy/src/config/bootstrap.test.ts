import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBootstrapFile } from './bootstrap.js';

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
