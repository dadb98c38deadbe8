// `tsmesh demo` (npm start) as a user runs it: on embedded defaults (no DATABASE_URL, no
// REDIS_URL), with a free port for the edge instead of 8080. It must answer the original
// report's two curl commands through the edge, and stop on SIGINT (or SIGHUP while starting)
// with exit code 0 and no process left behind (every descendant it had while running is gone).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { postQuery, request } from './support/gateway-client.js';
import { alive, descendants } from './support/process-tree.js';

const CLI = fileURLToPath(new URL('../cli/tsmesh.js', import.meta.url));

interface Demo {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startDemo(args: string[], dataDir: string): Demo {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.TSMESH_TOKEN;
  const child = spawn(process.execPath, [CLI, 'demo', '--data-dir', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

async function waitForOutput(demo: Demo, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(demo.output())) {
    if (demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}):\n${demo.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${demo.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('tsmesh demo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-demo-test-'));
  // As root the embedded PostgreSQL runs as "postgres", which must be able to enter it.
  chmodSync(dir, 0o755);
  const strays: number[] = [];
  after(() => {
    for (const pid of strays) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts the mesh, answers the original curl commands through the edge, and stops cleanly on SIGINT', async () => {
    // Port 0: the demo picks the edge's port while holding the others it picks, so they all
    // differ (a port picked here would be free for the demo's own port-0 picks).
    const demo = startDemo(['--port', '0', '--admin-port', '0', '--grpc-port', '0', '--api-port', '0', '--instances', '2', '--seed-documents', '300'], join(dir, 'a'));
    let pids: number[] = [];
    try {
      await waitForOutput(demo, /tsmesh demo is up/, 150_000);
      const out = demo.output();
      const port = Number(/curl http:\/\/localhost:(\d+)\/health/.exec(out)?.[1]);
      assert.ok(port > 0, out);
      // The original report's two commands, against the edge.
      assert.ok(out.includes(`curl http://localhost:${port}/health`), out);
      assert.ok(out.includes(`curl -X POST http://localhost:${port}/query -H "Content-Type: application/json" -d '{"query":"test"}'`), out);
      assert.match(out, /status/);

      const health = await request(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200, health.text);
      assert.equal(health.json.status, 'ok');
      const q = await postQuery(`http://127.0.0.1:${port}`, { query: 'test' });
      assert.equal(q.status, 200, q.text);
      assert.equal(q.json.query, 'test');
      assert.ok(q.json.count > 0, q.text);

      // The config came through the control plane: every proxy runs an acknowledged version.
      const api = /control plane +API (http:\/\/[\d.:]+)/.exec(out)?.[1];
      assert.ok(api, out);
      const token = readFileSync(join(dir, 'a', 'token'), 'utf8').trim();
      const status = await request(`${api}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(status.status, 200, status.text);
      const proxies = (status.json.proxies as Array<{ node: string; state: string }>).map((p) => `${p.node} ${p.state}`).sort();
      assert.deepEqual(proxies, ['edge acked', 'gateway-1 acked', 'gateway-2 acked']);

      pids = descendants(demo.child.pid!);
      strays.push(...pids);
      // PostgreSQL, the control plane, 2 gateways, 2 sidecars, the edge (and PostgreSQL's own).
      assert.ok(pids.length >= 7, `descendants: ${pids.length}`);

      demo.child.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([demo.exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 90_000)))]);
      clearTimeout(timer);
      assert.equal(code, 0, demo.output());
      assert.match(demo.output(), /stopped/);
      // Nothing left: every process the demo had is gone.
      const deadline = Date.now() + 5000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(pids.filter(alive), [], 'processes left behind');
      await assert.rejects(request(`http://127.0.0.1:${port}/health`), /ECONNREFUSED/);
    } finally {
      if (demo.child.exitCode === null) {
        strays.push(...descendants(demo.child.pid!));
        demo.child.kill('SIGKILL');
      }
    }
  });

  it('stops on SIGHUP (the terminal closed) while starting, leaving nothing behind', async () => {
    const demo = startDemo(['--port', '0', '--admin-port', '0', '--grpc-port', '0', '--api-port', '0', '--instances', '1', '--seed-documents', '10'], join(dir, 'c'));
    const seen = new Set<number>();
    const watch = setInterval(() => {
      if (demo.child.exitCode === null) for (const pid of descendants(demo.child.pid!)) seen.add(pid);
    }, 20);
    try {
      await waitForOutput(demo, /starting the control plane/, 90_000);
      for (const pid of descendants(demo.child.pid!)) seen.add(pid);
      demo.child.kill('SIGHUP');
      assert.equal(await demo.exited, 0, demo.output());
      assert.match(demo.output(), /SIGHUP: stopping/);
      clearInterval(watch);
      assert.ok(seen.size >= 2, `descendants: ${seen.size}`);
      strays.push(...seen);
      const deadline = Date.now() + 5000;
      while ([...seen].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual([...seen].filter(alive), [], 'processes left behind');
    } finally {
      clearInterval(watch);
      if (demo.child.exitCode === null) {
        strays.push(...descendants(demo.child.pid!));
        demo.child.kill('SIGKILL');
      }
    }
  });

  it('refuses a port in use with a clear error and starts nothing', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const demo = startDemo(['--port', String(port), '--admin-port', '0', '--grpc-port', '0', '--api-port', '0'], join(dir, 'b'));
      const code = await demo.exited;
      assert.equal(code, 1);
      assert.match(demo.output(), new RegExp(`127\\.0\\.0\\.1:${port} is already in use .*choose another port with --port`));
      assert.equal(existsSync(join(dir, 'b', 'postgres')), false, 'nothing was started');
    } finally {
      busy.close();
    }
  });
});
