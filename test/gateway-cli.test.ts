// `tsmesh gateway` as a process: DATABASE_URL / REDIS_URL from the environment, the embedded
// PostgreSQL without them, the original report's curl command, and a clean exit on SIGTERM.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { postQuery, request } from './support/gateway-client.js';
import { startPostgres, startRedis, type RealServer } from './support/servers.js';

const CLI = fileURLToPath(new URL('../cli/tsmesh.js', import.meta.url));

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
}

async function runGateway(args: string[], env: Record<string, string | undefined>): Promise<Running> {
  const child = spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', '--seed-documents', '500', ...args], {
    env: { ...process.env, DATABASE_URL: undefined, REDIS_URL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  const url = await new Promise<string>((ok, fail) => {
    let buf = '';
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'listening' && rec.url) ok(rec.url);
      }
    });
    void exited.then((code) => fail(new Error(`gateway exited (${code}) before listening: ${lines.join('\n')}`)));
  });
  return { child, url, lines, exited };
}

describe('tsmesh gateway', () => {
  const running: Running[] = [];
  const servers: RealServer[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGTERM');
    await Promise.all(running.map((r) => r.exited));
    await Promise.all(servers.map((s) => s.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('uses DATABASE_URL and REDIS_URL, answers the original curl, and drains on SIGTERM', async () => {
    const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
    servers.push(pg, redis);
    const gw = await runGateway([], { DATABASE_URL: pg.url, REDIS_URL: redis.url });
    running.push(gw);

    const health = await request(`${gw.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.cache.kind, 'redis');
    const q = await postQuery(gw.url, '{"query":"test"}');
    assert.equal(q.status, 200);
    assert.ok(q.json.count > 0);

    // An idle keep-alive connection must not hold the shutdown up.
    const { port, hostname } = new URL(gw.url);
    const idle = connect(Number(port), hostname);
    await new Promise((ok) => idle.once('connect', ok));
    const idleClosed = new Promise((ok) => idle.once('close', ok));
    idle.on('error', () => {});

    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0, gw.lines.join('\n'));
    await idleClosed;
    assert.ok(gw.lines.some((l) => l.includes('"msg":"stopped"')));
  });

  it('starts an embedded PostgreSQL without DATABASE_URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsmesh-gw-cli-'));
    dirs.push(dir);
    chmodSync(dir, 0o755); // as root the embedded server runs as "postgres", which must reach it
    const gw = await runGateway(['--data-dir', join(dir, 'data')], {});
    running.push(gw);
    const health = await request(`${gw.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.json.cache, { kind: 'memory', state: 'up' });
    assert.equal((await postQuery(gw.url, { query: 'test' })).status, 200);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0, gw.lines.join('\n'));
  });

  it('refuses a bad --listen with a clear error', async () => {
    const child = spawn(process.execPath, [CLI, 'gateway', '--listen', 'nowhere'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((ok) => child.once('exit', ok));
    assert.equal(code, 1);
    assert.match(err, /--listen must be HOST:PORT/);
  });
});
