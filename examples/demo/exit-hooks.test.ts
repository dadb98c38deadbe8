// exitOnSignals/killOnExit with real processes: a parent that runs MeshProcess children and
// gets SIGINT, SIGTERM or SIGHUP exits with 128 + n and takes its children with it; a parent
// that handles the signal itself is left alone.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, descendants, waitGone } from '../../test/support/process-tree.js';

const PROCESSES = new URL('./processes.js', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'tsmesh-exit-hooks-test-'));
const strays: number[] = [];
after(() => {
  for (const pid of strays) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A parent with one MeshProcess child (which ignores SIGTERM) that prints "up" once it runs. */
function parent(ownHandler: boolean): string {
  const file = join(dir, `parent-${ownHandler ? 'handles' : 'plain'}.mjs`);
  writeFileSync(
    file,
    `import { MeshProcess } from ${JSON.stringify(PROCESSES)};
import { writeFileSync } from 'node:fs';
${ownHandler ? "process.on('SIGTERM', () => console.log('handled'));" : ''}
const script = ${JSON.stringify(join(dir, 'child.mjs'))};
writeFileSync(script, "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('up');");
const c = new MeshProcess({ name: 'child', script, args: [] }, () => {});
await c.waitForLine((l) => (l === 'up' ? true : undefined), 10_000, 'up');
setInterval(() => {}, 1000);
console.log('up');
`,
  );
  return file;
}

async function startParent(ownHandler: boolean) {
  const p = spawn(process.execPath, [parent(ownHandler)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.setEncoding('utf8');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once('exit', (code, signal) => r({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('up\n')) resolve();
    });
    void exited.then((e) => reject(new Error(`parent exited early: ${JSON.stringify(e)}`)));
  });
  const kids = descendants(p.pid!);
  strays.push(p.pid!, ...kids);
  assert.ok(kids.length >= 1);
  return { p, kids, exited, out: () => out };
}

describe('exitOnSignals', () => {
  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGHUP', 129],
    ['SIGINT', 130],
  ] as const) {
    it(`${sig}: the parent exits ${code} and its exit hook kills its children`, async () => {
      const { p, kids, exited } = await startParent(false);
      p.kill(sig);
      assert.deepEqual(await exited, { code, signal: null });
      assert.deepEqual(await waitGone(kids, 5000), [], 'children left behind');
    });
  }

  it('leaves a signal alone when the parent handles it itself', async () => {
    const { p, kids, exited, out } = await startParent(true);
    p.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (!out().includes('handled') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(out(), /handled/);
    assert.equal(p.exitCode, null);
    p.kill('SIGINT');
    assert.deepEqual(await exited, { code: 130, signal: null });
    assert.deepEqual(await waitGone(kids, 5000), []);
  });
});
