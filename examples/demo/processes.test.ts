// MeshProcess with real processes: what stop() leaves behind (nothing), and a child that
// cannot be started.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, waitGone } from '../../test/support/process-tree.js';
import { MeshProcess } from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'tsmesh-processes-test-'));
const strays: number[] = [];
after(() => {
  for (const pid of strays) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A script that starts a grandchild in its own process group and prints its pid; on SIGTERM
 * it exits without stopping it (`onTerm: 'exit'`) or ignores the signal (`'ignore'`).
 */
function parentScript(name: string, onTerm: 'exit' | 'ignore'): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `import { spawn } from 'node:child_process';
const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
process.on('SIGTERM', () => { ${onTerm === 'exit' ? 'process.exit(0);' : ''} });
setInterval(() => {}, 1000);
console.log(JSON.stringify({ grandchild: g.pid }));
`,
  );
  return file;
}

async function started(script: string): Promise<{ p: MeshProcess; grandchild: number }> {
  const p = new MeshProcess({ name: 'parent', script, args: [] }, () => {});
  const grandchild = await p.waitForLine((l) => (l.startsWith('{') ? (JSON.parse(l) as { grandchild: number }).grandchild : undefined), 10_000, 'the grandchild pid');
  strays.push(p.pid, grandchild);
  assert.ok(alive(grandchild));
  return { p, grandchild };
}

describe('MeshProcess.stop', () => {
  it('kills what the process left in its group after it exited on SIGTERM', async () => {
    const { p, grandchild } = await started(parentScript('exits', 'exit'));
    await p.stop(10_000);
    assert.deepEqual(await p.exited, { code: 0, signal: null });
    assert.deepEqual(await waitGone([grandchild], 5000), [], 'the grandchild outlived its parent');
  });

  it('escalates to SIGKILL of the whole group when the process ignores SIGTERM', async () => {
    const { p, grandchild } = await started(parentScript('ignores', 'ignore'));
    await p.stop(300);
    assert.deepEqual(await p.exited, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await waitGone([p.pid, grandchild], 5000), []);
  });
});
