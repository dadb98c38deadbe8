// Real PostgreSQL and Redis servers for tests: Debian's binaries (installed by
// scripts/ensure-system-deps.sh), each instance on a free loopback port in a temporary
// directory, killed when the test process exits. No mocks of things we can run.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, chownSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, freePorts, portOpen } from '../../proxy/src/net/ports.js';

export { freePort, freePorts };

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The port opens before PostgreSQL has finished starting (it answers "the database system is
 * starting up" meanwhile): ready means a query is answered.
 */
async function acceptsQueries(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface RealServer {
  readonly url: string;
  readonly port: number;
  /** Graceful stop; the data directory stays until the process exits. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Starts again on the same port with the same data. */
  start(): Promise<void>;
}

function track(child: ChildProcess, name: string, log: string[]): void {
  children.add(child);
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  child.once('exit', () => children.delete(child));
  child.once('error', (e) => log.push(`${name}: ${e.message}`));
}

function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Direct children of a process (its pids, from /proc via pgrep). */
function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL server binaries not found; run scripts/ensure-system-deps.sh');
  versions.sort((a, b) => Number(b) - Number(a));
  return join(base, versions[0]!, 'bin');
}

const isRoot = process.getuid?.() === 0;

/** PostgreSQL refuses to run as root: as root, its programs run as the postgres user. */
function postgresUser(): { uid?: number; gid?: number } {
  if (!isRoot) return {};
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

/** Starts a throwaway PostgreSQL cluster; url is a postgres:// URL for database "postgres". */
export async function startPostgres(): Promise<RealServer> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-pg-'));
  const user = postgresUser();
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!);
  const data = join(dir, 'data');
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { stdio: 'pipe', cwd: dir, ...user });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

  const port = await freePort();
  const log: string[] = [];
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200',
    ];
    child = spawn(join(bin, 'postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, ...user });
    track(child, 'postgres', log);
    const c = child;
    // The port opens before recovery ends (queries fail with 57P03 until then): ready means a query answered.
    await waitFor(`postgres on ${port}: ${log.join('')}`, async () => {
      if (c.exitCode !== null) throw new Error(`postgres exited: ${log.join('')}`);
      return (await portOpen(port)) && (await acceptsQueries(port));
    });
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop: () => stopChild(child, 'SIGINT'),
    // A crash of the whole server: the postmaster and its backends, which would otherwise go on
    // answering on open connections for a moment after the postmaster died.
    kill: async () => {
      const backends = child?.pid === undefined ? [] : childPids(child.pid);
      await stopChild(child, 'SIGKILL');
      for (const pid of backends) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
}

/** Starts a throwaway Redis (no persistence); url is a redis:// URL. */
export async function startRedis(): Promise<RealServer> {
  const port = await freePort();
  const log: string[] = [];
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child, 'redis', log);
    const c = child;
    await waitFor(`redis on ${port}`, async () => {
      if (c.exitCode !== null) throw new Error(`redis exited: ${log.join('')}`);
      return portOpen(port);
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop: () => stopChild(child, 'SIGTERM'),
    kill: () => stopChild(child, 'SIGKILL'),
  };
}
