// The control plane and the CLI as real processes: `tsmesh control-plane` against a real
// PostgreSQL, operated with `tsmesh apply/status/history/diff/rollback`; then the control plane
// is killed (SIGKILL) while proxies run, a proxy restarts from its disk cache, and everything
// converges when the control plane comes back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlPlaneClient } from '../proxy/src/config/control-plane-client.js';
import { startFromControlPlane } from '../proxy/src/config/bootstrap.js';
import { validateConfig } from '../proxy/src/config/validate.js';
import { RecordingTarget } from './support/recording-target.js';
import { holdPort } from '../proxy/src/net/ports.js';
import { freePort, startPostgres, waitFor, type RealServer } from './support/servers.js';
import { gatewayDoc } from './support/documents.js';

const TSMESH = fileURLToPath(new URL('../cli/tsmesh.js', import.meta.url));
const TOKEN = 'process-token';

interface CpProcess {
  child: ChildProcess;
  http: string;
  output: string[];
}

/** With a database URL, or (a data directory) the embedded PostgreSQL. */
async function startCp(db: string | { dataDir: string }, grpcPort: number): Promise<CpProcess> {
  const { DATABASE_URL: _, ...env } = process.env;
  const child = spawn(process.execPath, [TSMESH, 'control-plane', '--grpc', `127.0.0.1:${grpcPort}`, '--http', '127.0.0.1:0', '--replica', 'proc'], {
    env: typeof db === 'string' ? { ...env, DATABASE_URL: db, TSMESH_TOKEN: TOKEN } : { ...env, TSMESH_DATA_DIR: db.dataDir, TSMESH_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let http = '';
  child.stdout!.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      output.push(line);
      if (line.includes('"control plane ready"')) http = (JSON.parse(line) as { http: string }).http;
    }
  });
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  await waitFor(`control plane ready: ${output.join('\n')}`, async () => {
    if (child.exitCode !== null) throw new Error(`control plane exited ${child.exitCode}: ${output.join('\n')}`);
    return http !== '';
  }, 60_000);
  return { child, http, output };
}

function kill(cp: CpProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!cp || cp.child.exitCode !== null || cp.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    cp.child.once('exit', () => resolve());
    cp.child.kill(signal);
  });
}

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TSMESH, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('control plane and CLI as processes', () => {
  let pg: RealServer;
  let grpcPort: number;
  let cp: CpProcess | undefined;
  let dir: string;
  let env: Record<string, string>;
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    pg = await startPostgres();
    grpcPort = await freePort();
    cp = await startCp(pg.url, grpcPort);
    dir = mkdtempSync(join(tmpdir(), 'tsmesh-cp-'));
    env = { TSMESH_SERVER: `http://${cp.http}`, TSMESH_TOKEN: TOKEN };
  });

  after(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    await kill(cp, 'SIGTERM');
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('apply, status, history, diff and rollback from the command line', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, gatewayDoc({ selector: 'cli-*' }));
    const a1 = await cli(['apply', '-f', good, '--comment', 'first'], env);
    assert.equal(a1.code, 0, a1.stderr);
    const r1 = Number(/^revision (\d+) stored for cli-\* \(version \1\)$/m.exec(a1.stdout)?.[1]);
    assert.ok(r1 > 0, a1.stdout);

    writeFileSync(good, gatewayDoc({ selector: 'cli-*', timeout: '5s' }));
    const a2 = await cli(['apply', '-f', good], env);
    assert.equal(a2.code, 0, a2.stderr);
    const r2 = Number(/^revision (\d+) stored/m.exec(a2.stdout)?.[1]);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'selector: cli-*\nlisteners:\n  - name: edge\n    address: nowhere\n    routes: [{ name: q, cluster: gone }]\n');
    const refused = await cli(['apply', '-f', bad], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the document has 2 problems; nothing was stored/);
    assert.match(refused.stderr, /^ {2}listeners\.edge\.address: must be an address like 127\.0\.0\.1:8080 \(got "nowhere"\)$/m);
    assert.match(refused.stderr, /^ {2}listeners\.edge\.routes\.q\.cluster: unknown cluster "gone"$/m);

    const noToken = await cli(['apply', '-f', good], { TSMESH_SERVER: env.TSMESH_SERVER!, TSMESH_TOKEN: '' });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /missing token/);

    const history = await cli(['history', '--selector', 'cli-*'], env);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^REVISION +TIME +AUTHOR +SERVICE +COMMENT$/m);
    assert.match(history.stdout, new RegExp(`^${r1} .* cli-\\* +first$`, 'm'));

    const diff = await cli(['diff', String(r1), String(r2)], env);
    assert.equal(diff.code, 0, diff.stderr);
    assert.equal(diff.stdout, `revision ${r1} -> ${r2}: 1 change\n~ listeners.edge.routes.query.timeout: 2s -> 5s\n`);

    const target = new RecordingTarget();
    const client = new ControlPlaneClient({ target, bootstrap: { controlPlane: { address: `127.0.0.1:${grpcPort}`, node: 'cli-1', token: TOKEN } } });
    client.start();
    cleanups.push(async () => {
      await client.stop();
      target.close();
    });
    await waitFor('cli-1 on r2', async () => target.current?.version === String(r2));

    const rb = await cli(['rollback', String(r1)], env);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(rb.stdout, new RegExp(`the document of revision ${r1}\npushing to 1 connected proxy: cli-1`));
    const r3 = Number(/^revision (\d+) stored/m.exec(rb.stdout)?.[1]);
    await waitFor('cli-1 on the rollback', async () => target.current?.version === String(r3));
    assert.equal(target.current!.config.listeners[0]!.routes[0]!.timeout, 2000);

    await waitFor('status shows cli-1', async () => new RegExp(`^cli-1 +cli-\\* +${r3} +acked +\\d+s +proc +- +-$`, 'm').test((await cli(['status'], env)).stdout));
    const status = await cli(['status'], env);
    assert.match(status.stdout, /^NODE +SERVICE +VERSION +STATE +CONNECTED +REPLICA +ADMIN +LAST NACK$/m);
    assert.match(status.stdout, /1 replica: proc \(grpc 127\.0\.0\.1:\d+, http 127\.0\.0\.1:\d+\)/);
    const json = JSON.parse((await cli(['status', '--json'], env)).stdout) as { proxies: Array<{ node: string; version: string }> };
    assert.equal(json.proxies.find((p) => p.node === 'cli-1')?.version, String(r3));

    const closedPort = 2; // below the ephemeral range: nothing binds it (fetch refuses port 1 as a bad port)
    const unreachable = await cli(['status', '--server', `127.0.0.1:${closedPort}`], env);
    assert.equal(unreachable.code, 1);
    assert.equal(unreachable.stderr, `tsmesh: cannot reach the control plane at http://127.0.0.1:${closedPort}: ECONNREFUSED\n`);
  });

  test('control plane killed: proxies keep their config, a restarted proxy boots from its disk cache, all converge on its return', async () => {
    const bootstrap = (node: string) => {
      const v = validateConfig({ admin: { address: '127.0.0.1:0' }, controlPlane: { address: `127.0.0.1:${grpcPort}`, node, token: TOKEN, cacheDir: join(dir, node) } });
      assert.ok(v.ok);
      return v.value;
    };
    const fast = { backoff: { baseMs: 50, maxMs: 400 }, initialFetchTimeoutMs: 3000 };
    const file = join(dir, 'kill.yaml');
    writeFileSync(file, gatewayDoc({ selector: 'kill-*', timeout: '3s' }));
    const applied = await cli(['apply', '-f', file], env);
    assert.equal(applied.code, 0, applied.stderr);
    const v1 = /^revision (\d+)/m.exec(applied.stdout)![1]!;

    const t1 = new RecordingTarget();
    const p1 = await startFromControlPlane(bootstrap('kill-1'), t1, fast);
    const t2 = new RecordingTarget();
    let p2 = await startFromControlPlane(bootstrap('kill-2'), t2, fast);
    cleanups.push(async () => {
      await p1.stop();
      await p2.stop();
      t1.close();
      t2.close();
    });
    assert.equal(p1.bootedFrom, 'control-plane');
    assert.equal(t1.current?.version, v1);
    await waitFor('kill-2 on v1', async () => t2.current?.version === v1);

    await kill(cp, 'SIGKILL');
    await waitFor('kill-1 sees the control plane gone', async () => p1.client.status.state !== 'connected');
    assert.equal(t1.current?.version, v1, 'the running config stays');
    assert.equal(t1.applied.length, 1);
    // Held while the control plane is down: kill-2's restart binds port 0 and could otherwise
    // be given this port.
    const grpcHeld = await holdPort('127.0.0.1', grpcPort);

    // kill-2 restarts while the control plane is down: it boots from its disk copy.
    await p2.stop();
    t2.close();
    const t2b = new RecordingTarget();
    p2 = await startFromControlPlane(bootstrap('kill-2'), t2b, fast);
    cleanups.push(() => t2b.close());
    assert.equal(p2.bootedFrom, 'disk-cache', p2.reason);
    assert.equal(t2b.current?.version, v1);
    assert.equal(t2b.current?.source, 'disk-cache');
    assert.equal(t2b.current?.config.listeners[0]!.routes[0]!.timeout, 3000);
    assert.equal(t2b.current?.config.controlPlane?.node, 'kill-2');

    await grpcHeld.release();
    cp = await startCp(pg.url, grpcPort);
    env.TSMESH_SERVER = `http://${cp.http}`;
    await waitFor('both reconnect', async () => p1.client.status.state === 'connected' && p2.client.status.state === 'connected', 15_000);
    writeFileSync(file, gatewayDoc({ selector: 'kill-*', timeout: '4s' }));
    const again = await cli(['apply', '-f', file], env);
    assert.equal(again.code, 0, again.stderr);
    const v2 = /^revision (\d+)/m.exec(again.stdout)![1]!;
    await waitFor('both converge on v2', async () => t1.current?.version === v2 && t2b.current?.version === v2);
    assert.equal(t2b.current?.source, 'control-plane');
    assert.equal(t1.applied.length, 2, 'kill-1 applied v1 once and v2 once: nothing re-sent on reconnect');
  });

  test('without DATABASE_URL: an embedded PostgreSQL under --data-dir keeps revisions across restarts; SIGTERM stops cleanly', async () => {
    const dataDir = join(dir, 'embedded');
    // As root, the embedded server runs as the postgres user, which must reach the directory.
    chmodSync(dir, 0o755);
    // gRPC on port 0: the embedded PostgreSQL picks its port before gRPC binds, and a port
    // picked here could be the one it is given.
    let embedded: CpProcess | undefined = await startCp({ dataDir }, 0);
    cleanups.push(() => kill(embedded, 'SIGKILL'));
    assert.ok(embedded.output.some((l) => l.includes('embedded PostgreSQL started')));
    const file = join(dir, 'embedded.yaml');
    writeFileSync(file, gatewayDoc({ selector: 'embedded-*' }));
    const applied = await cli(['apply', '-f', file, '--comment', 'kept'], { TSMESH_SERVER: embedded.http, TSMESH_TOKEN: TOKEN });
    assert.equal(applied.code, 0, applied.stderr);

    const exited = new Promise<number | null>((resolve) => embedded!.child.once('exit', (code) => resolve(code)));
    embedded.child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(embedded.output.some((l) => l.includes('"stopping"')));

    embedded = await startCp({ dataDir }, 0);
    const history = await cli(['history', '--json'], { TSMESH_SERVER: embedded.http, TSMESH_TOKEN: TOKEN });
    assert.deepEqual((JSON.parse(history.stdout) as { revisions: Array<{ comment: string }> }).revisions.map((r) => r.comment), ['kept']);
    await kill(embedded, 'SIGTERM');
  });
});
