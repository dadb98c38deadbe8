// The TypeScript of the contract is committed (proto/gen/); this regenerates it into a
// temporary directory with the same script as `npm run gen:proto` and fails when it differs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

test('proto/gen is what `npm run gen:proto` generates from proto/*.proto', () => {
  const out = mkdtempSync(join(tmpdir(), 'tsmesh-gen-'));
  try {
    execFileSync('sh', [join(root, 'scripts/gen-proto.sh'), out], { stdio: 'pipe' });
    const committedDir = join(root, 'proto/gen');
    const freshDir = join(out, 'gen');
    const committed = files(committedDir).map((f) => relative(committedDir, f)).sort();
    const fresh = files(freshDir).map((f) => relative(freshDir, f)).sort();
    assert.deepEqual(committed, fresh, 'generated files differ from proto/gen: run `npm run gen:proto` and commit');
    for (const f of fresh) {
      assert.equal(readFileSync(join(committedDir, f), 'utf8'), readFileSync(join(freshDir, f), 'utf8'), `proto/gen/${f} is out of date: run \`npm run gen:proto\` and commit`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
