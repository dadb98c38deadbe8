// Runs the load generator in a child process (its CPU is then not the measured process's)
// and returns its JSON result.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killOnExit } from '../../examples/demo/exit-hooks.js';
import type { PlainLoadOptions } from './options.js';
import type { LoadResult } from './run.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

export function runLoadInChild(opts: PlainLoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '--spec', JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
    killOnExit(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`load generator exited with ${code ?? signal}: ${err.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as LoadResult);
      } catch (e) {
        reject(new Error(`load generator printed no JSON result: ${(e as Error).message}: ${out.slice(0, 200)}`));
      }
    });
  });
}
