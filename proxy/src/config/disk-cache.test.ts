import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskCache } from './disk-cache.js';

test('saves atomically (no temporary file left), loads back, replaces the previous copy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-cache-'));
  try {
    const cache = new DiskCache(join(dir, 'nested'));
    assert.deepEqual(await cache.load(), { ok: false, missing: true, error: `no cached config at ${cache.path}` });
    await cache.save({ version: '3', node: 'gateway-1', document: { listeners: [] } });
    await cache.save({ version: '4', node: 'gateway-1', document: { clusters: [] } });
    const loaded = await cache.load();
    assert.ok(loaded.ok);
    assert.equal(loaded.value.version, '4');
    assert.deepEqual(loaded.value.document, { clusters: [] });
    assert.deepEqual(readdirSync(join(dir, 'nested')), ['snapshot.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged or foreign file is reported, not used', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-cache-'));
  try {
    const cache = new DiskCache(dir);
    writeFileSync(cache.path, '{"version": "1", "node": "x", "document": {');
    const broken = await cache.load();
    assert.equal(broken.ok, false);
    assert.match(broken.ok ? '' : broken.error, /snapshot\.json: .*JSON/);
    writeFileSync(cache.path, '{"something": "else"}');
    const foreign = await cache.load();
    assert.equal(foreign.ok ? '' : foreign.error, `${cache.path}: not a tsmesh config cache (format 1)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
