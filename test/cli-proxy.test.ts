// The `tsmesh proxy` and `tsmesh validate` commands as an operator runs them: real processes.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { httpGet } from './support/proxy.js';
import { freePorts } from './support/servers.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'tsmesh.js');
let dir: string;
let up: TestUpstream;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsmesh-cli-'));
  up = await startUpstream();
});

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await up?.close();
});

const BAD = `listeners:
  - name: edge
    address: 127.0.0.1:8080
    routes:
      - name: query
        match: { path: { prefix: / } }
        cluster: gateway
        timeout: 2 seconds
clusters:
  - name: gateway
    endpoints: [127.0.0.1:9001]
    loadBalancer: fastest
`;

test('tsmesh validate lists every problem by path and exits non-zero', () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, BAD);
  const r = spawnSync(process.execPath, [cli, 'validate', file], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /2 problems/);
  assert.match(r.stderr, /listeners\.edge\.routes\.query\.timeout: must be a duration like 250ms, 2s or 1m \(got "2 seconds"\)/);
  assert.match(r.stderr, /clusters\.gateway\.loadBalancer: must be one of round-robin, least-request, peak-ewma/);
});

test('tsmesh proxy with a bad file lists the problems and exits non-zero without listening', () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, BAD);
  const r = spawnSync(process.execPath, [cli, 'proxy', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /listeners\.edge\.routes\.query\.timeout/);
  assert.match(r.stderr, /clusters\.gateway\.loadBalancer/);
  const missing = spawnSync(process.execPath, [cli, 'proxy', '--config', join(dir, 'nope.yaml')], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /ENOENT/);
});

test('tsmesh proxy --help explains its flags', () => {
  const r = spawnSync(process.execPath, [cli, 'proxy', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--config <file>/);
  assert.match(r.stdout, /SIGTERM/);
  for (const flag of ['--node <name>', '--token <token>', '--control-plane <address>', '--cache-dir <dir>']) assert.ok(r.stdout.includes(flag), flag);
  assert.match(r.stdout, /env: TSMESH_NODE/);
});

test('tsmesh proxy with a bootstrap lacking a node name says where to give it, and exits non-zero', () => {
  const file = join(dir, 'bootstrap.yaml');
  writeFileSync(file, 'admin: { address: 127.0.0.1:0 }\ncontrolPlane: { address: 127.0.0.1:1 }\n');
  const { TSMESH_NODE: _, ...env } = process.env;
  const r = spawnSync(process.execPath, [cli, 'proxy', '--config', file], { encoding: 'utf8', timeout: 20_000, env });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `${file}: 1 problem\n  controlPlane.node: is required (in the file, or with --node)\n`);
});

test('tsmesh proxy serves, prints its addresses, and drains on SIGTERM (exit 0)', async () => {
  const [port, admin] = (await freePorts(2)) as [number, number];
  const file = join(dir, 'good.yaml');
  writeFileSync(
    file,
    `admin: { address: 127.0.0.1:${admin} }
drain: { delay: 100ms, timeout: 2s }
listeners:
  - name: edge
    address: 127.0.0.1:${port}
    routes:
      - { name: all, match: { path: { prefix: / } }, cluster: up }
clusters:
  - { name: up, endpoints: [${up.address}] }
`,
  );
  const child = spawn(process.execPath, [cli, 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const until = Date.now() + 15_000;
    // Each address is its own line (its own write): wait for both.
    while (!(out.includes(`listener edge http://127.0.0.1:${port}`) && out.includes(`admin http://127.0.0.1:${admin}`)) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(out, new RegExp(`listener edge http://127\\.0\\.0\\.1:${port}`));
    assert.match(out, new RegExp(`admin http://127\\.0\\.0\\.1:${admin}`));
    assert.equal((await httpGet(port, '/x')).status, 200);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(out, /draining/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
