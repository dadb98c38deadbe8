import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repoRoot } from './repo.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

test('the committed OTLP decoders match their .proto files (sh scripts/gen-otlp.sh)', () => {
  const root = repoRoot();
  const out = mkdtempSync(join(tmpdir(), 'tsmesh-otlp-gen-'));
  try {
    execFileSync('sh', ['scripts/gen-otlp.sh', out], { cwd: root, stdio: 'pipe' });
    const committed = join(root, 'test/support/otlp/gen');
    const fresh = files(out).map((f) => relative(out, f)).sort();
    assert.deepEqual(files(committed).map((f) => relative(committed, f)).sort(), fresh);
    for (const f of fresh) assert.equal(readFileSync(join(committed, f), 'utf8'), readFileSync(join(out, f), 'utf8'), `${f} is out of date: run sh scripts/gen-otlp.sh`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
