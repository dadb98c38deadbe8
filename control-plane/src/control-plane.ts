// The control plane process: the revision store (PostgreSQL: DATABASE_URL, or an embedded
// server under the data directory), the in-memory snapshot cache fed by it and by LISTEN/
// NOTIFY from other replicas, the gRPC stream server for proxies and the HTTP API.
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import Pool from 'pg-pool';
import { pino, type Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../../proxy/src/config/units.js';
import { createApiServer } from './api/http-api.js';
import { TokenCheck } from './auth.js';
import { ControlPlaneMetrics } from './metrics.js';
import { DiscoveryServer } from './server/discovery-server.js';
import { SnapshotCache } from './server/snapshot-cache.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
import { migrate } from './store/migrations.js';
import { ProxyStatusWriter } from './store/proxy-status.js';
import { listenForRevisions, RevisionStore, type Revision } from './store/revisions.js';

export interface ControlPlaneOptions {
  /** host:port for proxies' gRPC streams (port 0: any free port). */
  readonly grpc: string;
  /** host:port for the HTTP API. */
  readonly http: string;
  readonly token: string;
  /** A real PostgreSQL; without it an embedded one keeps its data under dataDir. */
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  readonly log?: Logger;
  /** Name of this replica in status (default: host name and a random suffix). */
  readonly replica?: string;
}

export interface RunningControlPlane {
  readonly grpcAddress: string;
  readonly httpAddress: string;
  readonly replica: string;
  readonly metrics: ControlPlaneMetrics;
  stop(): Promise<void>;
}

function address(text: string, flag: string): { host: string; port: number } {
  const a = parseHostPort(text);
  if (!a) throw new Error(`${flag}: must be an address like 127.0.0.1:15010 (got ${JSON.stringify(text)})`);
  return a;
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = opts.log ?? pino({ name: 'tsmesh-control-plane' });
  const grpcAt = address(opts.grpc, '--grpc');
  const httpAt = address(opts.http, '--http');
  const token = new TokenCheck(opts.token);
  const replica = opts.replica ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const cleanup: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch((err: unknown) => log.error({ err }, 'stopping'));
  };

  try {
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      if (!opts.dataDir) throw new Error('without DATABASE_URL the control plane needs --data-dir for its embedded PostgreSQL');
      const embedded: EmbeddedDatabase = await startEmbeddedPostgres(opts.dataDir, { log: (line) => log.debug({ postgres: line }) });
      cleanup.push(() => embedded.stop());
      databaseUrl = embedded.url;
      log.info({ dataDir: opts.dataDir }, 'embedded PostgreSQL started');
    }

    const pool = new Pool({ connectionString: databaseUrl, max: 10, keepAlive: true }, pg.Client);
    pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed'));
    cleanup.push(() => pool.end());
    const applied = await migrate(pool);
    if (applied.length > 0) log.info({ applied }, 'schema migrations applied');

    const store = new RevisionStore(pool);
    const cache = new SnapshotCache();
    const metrics = new ControlPlaneMetrics();
    const status = new ProxyStatusWriter(pool, replica, (err) => log.warn({ err }, 'writing proxy status failed'));
    const discovery = new DiscoveryServer(cache, token, metrics, status, log, replica);

    const take = (rev: Revision, first: number) => {
      if (cache.set(rev, first)) discovery.refresh();
    };
    const reload = async () => {
      for (const rev of await store.latestPerSelector()) take(rev, rev.firstRevision);
    };
    // NOTIFYs arrive for this replica's own applies too; those are taken already.
    const fetchRevision = async (n: number) => {
      if (seen.has(n)) return;
      seen.add(n);
      const rev = await store.get(n);
      if (!rev) return;
      take(rev, (await store.firstRevisionOf(rev.selector)) ?? rev.revision);
    };
    const seen = new Set<number>();
    const revisions = await listenForRevisions(databaseUrl, {
      onRevision: (n) => void fetchRevision(n).catch((err: unknown) => log.error({ err, revision: n }, 'loading a notified revision failed')),
      onResync: () => void reload().catch((err: unknown) => log.error({ err }, 'reloading revisions failed')),
      onError: (err) => log.warn({ err }, 'LISTEN connection failed; reconnecting'),
    });
    cleanup.push(() => revisions.close());
    await reload();

    const grpcServer = new grpc.Server({
      // Finds proxies that vanished without closing their connection.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
    });
    discovery.register(grpcServer);
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(`${grpcAt.host.includes(':') ? `[${grpcAt.host}]` : grpcAt.host}:${grpcAt.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    cleanup.push(async () => {
      discovery.closeAll();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          grpcServer.forceShutdown();
          resolve();
        }, 2000);
        grpcServer.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    });

    let ready = false;
    const api = createApiServer({
      pool,
      store,
      cache,
      discovery,
      token,
      metrics,
      log,
      replica,
      ready: () => ready,
      accept: async (rev) => {
        seen.add(rev.revision);
        take(rev, (await store.firstRevisionOf(rev.selector)) ?? rev.revision);
      },
    });
    await new Promise<void>((resolve, reject) => {
      api.once('error', reject);
      api.listen(httpAt.port, httpAt.host, () => resolve());
    });
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          api.close(() => resolve());
          api.closeAllConnections();
        }),
    );
    const httpPort = (api.address() as AddressInfo).port;
    const fmt = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    const grpcAddress = fmt(grpcAt.host, grpcPort);
    const httpAddress = fmt(httpAt.host, httpPort);

    await status.start({ grpc: grpcAddress, http: httpAddress });
    // Registered last so that it runs first: rows are removed while the pool is still open.
    cleanup.push(() => status.stop());
    ready = true;
    log.info({ grpc: grpcAddress, http: httpAddress, replica, services: cache.size, revision: cache.latestRevision }, 'control plane ready');

    return {
      grpcAddress,
      httpAddress,
      replica,
      metrics,
      async stop() {
        ready = false;
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
