// Per-proxy stream status, shared by all replicas through PostgreSQL so that `tsmesh status`
// shows every proxy whichever replica it is connected to. Each replica writes its own
// streams' rows behind a short delay (batched: one statement per flush however many proxies
// changed) and heartbeats; rows of a replica that stopped heartbeating are not shown.
import type pg from 'pg';

export type StreamState = 'connecting' | 'pending' | 'acked' | 'nacked' | 'no-config';

export interface StreamStatus {
  readonly stream: number;
  readonly node: string;
  readonly selector: string | null;
  /** The version the proxy last reported running (ACKed, or brought from its disk cache). */
  readonly version: string;
  readonly state: StreamState;
  readonly lastError: string | null;
  readonly nackedVersion: string | null;
  readonly connectedSince: Date;
  /** The proxy's admin listener (host:port) as it reported it in its node metadata, if it did. */
  readonly adminAddress: string | null;
}

export interface ProxyStatusRow extends StreamStatus {
  readonly replica: string;
  readonly updatedAt: Date;
}

/** A replica is shown as alive while it heartbeated within this many seconds. */
export const REPLICA_TIMEOUT_S = 15;
const HEARTBEAT_MS = 5000;

export class ProxyStatusWriter {
  private readonly dirty = new Map<number, StreamStatus>();
  private readonly gone = new Set<number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    readonly replica: string,
    private readonly onError: (err: Error) => void,
    private readonly flushDelayMs = 100,
  ) {}

  async start(addresses: { grpc: string; http: string }): Promise<void> {
    await this.pool.query(
      `INSERT INTO tsmesh_replicas (replica, grpc_address, http_address) VALUES ($1, $2, $3)
       ON CONFLICT (replica) DO UPDATE SET grpc_address = $2, http_address = $3, last_seen = now()`,
      [this.replica, addresses.grpc, addresses.http],
    );
    // Replicas gone for a day are forgotten, with their rows.
    await this.pool.query(`DELETE FROM tsmesh_proxy_status WHERE replica IN (SELECT replica FROM tsmesh_replicas WHERE last_seen < now() - interval '1 day')`);
    await this.pool.query(`DELETE FROM tsmesh_replicas WHERE last_seen < now() - interval '1 day'`);
    this.heartbeat = setInterval(() => {
      this.pool.query('UPDATE tsmesh_replicas SET last_seen = now() WHERE replica = $1', [this.replica]).catch(this.onError);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  update(status: StreamStatus): void {
    this.gone.delete(status.stream);
    this.dirty.set(status.stream, status);
    this.schedule();
  }

  remove(stream: number): void {
    this.dirty.delete(stream);
    this.gone.add(stream);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush()).catch(this.onError);
    }, this.flushDelayMs);
    this.flushTimer.unref();
  }

  /** Writes what changed since the last flush. */
  async flush(): Promise<void> {
    const rows = [...this.dirty.values()];
    const gone = [...this.gone];
    this.dirty.clear();
    this.gone.clear();
    if (rows.length > 0) {
      await this.pool.query(
        `INSERT INTO tsmesh_proxy_status (replica, stream, node, selector, version, state, last_error, nacked_version, connected_since, admin_address, updated_at)
         SELECT $1, * , now() FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])
         ON CONFLICT (replica, stream) DO UPDATE SET node = EXCLUDED.node, selector = EXCLUDED.selector, version = EXCLUDED.version,
           state = EXCLUDED.state, last_error = EXCLUDED.last_error, nacked_version = EXCLUDED.nacked_version,
           admin_address = EXCLUDED.admin_address, updated_at = now()`,
        [
          this.replica,
          rows.map((r) => r.stream),
          rows.map((r) => r.node),
          rows.map((r) => r.selector),
          rows.map((r) => r.version),
          rows.map((r) => r.state),
          rows.map((r) => r.lastError),
          rows.map((r) => r.nackedVersion),
          rows.map((r) => r.connectedSince),
          rows.map((r) => r.adminAddress),
        ],
      );
    }
    if (gone.length > 0) {
      await this.pool.query('DELETE FROM tsmesh_proxy_status WHERE replica = $1 AND stream = ANY($2::bigint[])', [this.replica, gone]);
    }
  }

  /** Stops heartbeating and removes this replica's rows (its streams are closed). */
  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flushing.catch(() => {});
    await this.pool.query('DELETE FROM tsmesh_proxy_status WHERE replica = $1', [this.replica]);
    await this.pool.query('DELETE FROM tsmesh_replicas WHERE replica = $1', [this.replica]);
  }
}

interface StatusRow {
  replica: string;
  stream: string;
  node: string;
  selector: string | null;
  version: string;
  state: StreamState;
  last_error: string | null;
  nacked_version: string | null;
  connected_since: Date;
  admin_address: string | null;
  updated_at: Date;
}

/** Every proxy connected to a live replica, by node name. */
export async function readProxyStatus(pool: pg.Pool): Promise<ProxyStatusRow[]> {
  const { rows } = await pool.query<StatusRow>(
    `SELECT s.* FROM tsmesh_proxy_status s JOIN tsmesh_replicas r USING (replica)
     WHERE r.last_seen > now() - make_interval(secs => $1) ORDER BY s.node, s.replica, s.stream`,
    [REPLICA_TIMEOUT_S],
  );
  return rows.map((r) => ({
    replica: r.replica,
    stream: Number(r.stream),
    node: r.node,
    selector: r.selector,
    version: r.version,
    state: r.state,
    lastError: r.last_error,
    nackedVersion: r.nacked_version,
    connectedSince: r.connected_since,
    adminAddress: r.admin_address,
    updatedAt: r.updated_at,
  }));
}

export async function readReplicas(pool: pg.Pool): Promise<Array<{ replica: string; grpcAddress: string; httpAddress: string; startedAt: Date; lastSeen: Date; alive: boolean }>> {
  const { rows } = await pool.query<{ replica: string; grpc_address: string; http_address: string; started_at: Date; last_seen: Date; alive: boolean }>(
    `SELECT *, last_seen > now() - make_interval(secs => $1) AS alive FROM tsmesh_replicas ORDER BY started_at`,
    [REPLICA_TIMEOUT_S],
  );
  return rows.map((r) => ({ replica: r.replica, grpcAddress: r.grpc_address, httpAddress: r.http_address, startedAt: r.started_at, lastSeen: r.last_seen, alive: r.alive }));
}
