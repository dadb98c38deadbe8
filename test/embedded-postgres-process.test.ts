// The demo's embedded PostgreSQL wrapper stopped while it is still initialising the database:
// it must stop what it started and exit 0, leaving no initdb or postgres behind.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MeshProcess } from '../examples/demo/processes.js';
import { alive, descendants, waitGone } from './support/process-tree.js';

const WRAPPER = fileURLToPath(new URL('../examples/demo/embedded-postgres-process.js', import.meta.url));

describe('embedded-postgres-process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-embedded-pg-test-'));
  // As root the server runs as "postgres", which must be able to enter it.
  chmodSync(dir, 0o755);
  const seen = new Set<number>();
  after(() => {
    for (const pid of seen) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops cleanly on SIGTERM during initdb', async () => {
    const lines: string[] = [];
    const p = new MeshProcess({ name: 'postgres', script: WRAPPER, args: [join(dir, 'data')] }, (_n, _s, l) => lines.push(l));
    // Its first descendant is initdb (or the package's user setup as root): the start is under way.
    const deadline = Date.now() + 60_000;
    while (descendants(p.pid).length === 0) {
      assert.ok(p.running, `it exited before starting anything:\n${lines.join('\n')}`);
      assert.ok(Date.now() < deadline, 'nothing started within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const pid of descendants(p.pid)) seen.add(pid);
    // SIGTERM to the wrapper only (as MeshProcess.stop sends it); no SIGKILL escalation here.
    p.signal('SIGTERM');
    const watch = setInterval(() => {
      for (const pid of descendants(p.pid)) seen.add(pid);
    }, 20);
    try {
      const { code, signal } = await p.exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, lines.join('\n'));
    } finally {
      clearInterval(watch);
    }
    assert.ok(!lines.some((l) => l.includes('"listening"')), 'it announced a server it was asked to stop');
    assert.deepEqual(await waitGone([...seen], 5000), [], `left behind: ${[...seen].filter(alive).join(', ')}`);
  });
});
