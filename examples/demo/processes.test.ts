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

describe('MeshProcess that cannot start', () => {
  it('resolves exited when the program cannot be spawned, and says why', async () => {
    const lines: string[] = [];
    const p = new MeshProcess({ name: 'ghost', executable: join(dir, 'no-such-program'), args: [] }, (_n, _s, l) => lines.push(l));
    const waiting = p.waitForLine((l) => (l === 'ready' ? true : undefined), 10_000, 'its ready line');
    assert.deepEqual(await p.exited, { code: null, signal: null });
    assert.equal(p.running, false);
    assert.match(p.exitStatus, /could not start: .*ENOENT/);
    assert.match(lines.join('\n'), /cannot start: .*ENOENT/);
    await assert.rejects(waiting, /ghost exited \(could not start: .*ENOENT\) before its ready line/);
    await p.stop(1000); // nothing to stop, and it does not hang
  });

  it('resolves exited when the script does not exist (node exits 1)', async () => {
    const p = new MeshProcess({ name: 'no-script', script: join(dir, 'no-such-script.js'), args: [] }, () => {});
    assert.deepEqual(await p.exited, { code: 1, signal: null });
    assert.match(p.tail(), /Cannot find module/);
  });
});
