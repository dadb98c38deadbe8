// Per-endpoint connection pools (Envoy's model, HTTP/1.1: one request per connection at a
// time). Idle connections are reused last-in-first-out, so that a burst's extra connections
// go cold and are closed by the idle timeout while the warm ones keep serving. A pool is
// bounded by `pool.maxConnectionsPerEndpoint`; the cluster as a whole by the circuit
// breaker's `maxConnections` (opening more waits in the queue) and `maxPending` (the queue's
// length; past it 503 circuit_open). ClusterState.connections and pendingRequests are kept
// exact here, since the breaker thresholds read them.
import type { Clock } from '../clock.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { ClusterState } from './cluster-state.js';
import type { EndpointState } from './endpoint.js';
import { UpstreamConnection, netConnector, type Connector } from './connection.js';

/** Someone waiting for a connection: an upstream attempt. */
export interface PoolWaiter {
  onConnection(conn: UpstreamConnection): void;
  /** No connection: `connect` failed or timed out; `pending`/`connections` breaker threshold reached. */
  onPoolFailure(kind: 'connect' | 'pending' | 'connections', detail: string): void;
  /** Bookkeeping owned by the pool. */
  poolWait: PoolWait | undefined;
}

/** Where a waiter waits: in a pool's queue, or for a connection it caused to be opened. */
export interface PoolWait {
  readonly pool: EndpointPool;
  connecting: UpstreamConnection | undefined;
}

/** An upstream's Keep-Alive timeout hint is trusted minus this margin (its clock and ours race). */
const KEEP_ALIVE_MARGIN_MS = 1000;

export class EndpointPool {
  readonly idle: UpstreamConnection[] = [];
  /** Connections open or being opened. */
  open = 0;
  busy = 0;
  closed = false;
  private readonly waiters: PoolWaiter[] = [];
  private waitHead = 0;
  private readonly connectingOwner = new Map<UpstreamConnection, PoolWaiter>();

  constructor(
    readonly owner: ClusterPools,
    readonly endpoint: EndpointState,
  ) {}

  get cluster(): ClusterState {
    return this.owner.cluster;
  }

  get waiting(): number {
    return this.waiters.length - this.waitHead;
  }

  /**
   * Gets a connection for w: an idle one at once (unless `fresh`), a new one, or a place in
   * the queue. The answer comes through w.onConnection / w.onPoolFailure, possibly synchronously.
   */
  acquire(w: PoolWaiter, fresh = false): void {
    if (!fresh) {
      const idle = this.idle;
      while (idle.length > 0) {
        const conn = idle.pop()!;
        if (conn.usable()) {
          this.lend(conn, w);
          return;
        }
        conn.destroy();
      }
    }
    const cluster = this.cluster;
    const cfg = cluster.config;
    if (this.open < cfg.pool.maxConnectionsPerEndpoint) {
      if (cluster.connections < cfg.circuitBreaker.maxConnections || this.owner.evictIdle(this)) {
        this.connectFor(w);
        return;
      }
    } else if (fresh && this.idle.length > 0) {
      this.idle.shift()!.destroy();
      this.connectFor(w);
      return;
    }
    // Wait for a connection of this endpoint to be released.
    if (cluster.pendingRequests >= cfg.circuitBreaker.maxPending) {
      this.owner.rejected('pending');
      w.onPoolFailure('pending', `cluster ${cluster.name}: ${cluster.pendingRequests} requests already wait for a connection (circuitBreaker.maxPending)`);
      return;
    }
    if (this.busy === 0 && this.open === this.idle.length) {
      // Nothing of this endpoint will be released: the cluster's connections are all elsewhere.
      this.owner.rejected('connections');
      w.onPoolFailure('connections', `cluster ${cluster.name}: ${cluster.connections} connections open (circuitBreaker.maxConnections)`);
      return;
    }
    cluster.pendingRequests++;
    w.poolWait = { pool: this, connecting: undefined };
    this.waiters.push(w);
  }

  /** The waiter gave up (timeout, client gone): leave the queue, forget the connection being opened for it. */
  cancel(w: PoolWaiter): void {
    const wait = w.poolWait;
    if (!wait || wait.pool !== this) return;
    w.poolWait = undefined;
    this.cluster.pendingRequests--;
    if (wait.connecting) {
      this.connectingOwner.delete(wait.connecting);
      return;
    }
    const i = this.waiters.indexOf(w, this.waitHead);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  private connectFor(w: PoolWaiter): void {
    const cluster = this.cluster;
    const conn = new UpstreamConnection(this, this.endpoint.host, this.endpoint.port, this.owner.connector);
    this.open++;
    cluster.connections++;
    this.owner.opened();
    cluster.pendingRequests++;
    w.poolWait = { pool: this, connecting: conn };
    this.connectingOwner.set(conn, w);
    conn.connectTimer = this.owner.clock.setTimer(() => conn.connectTimedOut(), cluster.config.connectTimeout);
  }

  private lend(conn: UpstreamConnection, w: PoolWaiter): void {
    conn.lent = true;
    this.busy++;
    w.onConnection(conn);
  }

  private nextWaiter(): PoolWaiter | undefined {
    if (this.waitHead >= this.waiters.length) return undefined;
    const w = this.waiters[this.waitHead]!;
    this.waiters[this.waitHead++] = undefined as unknown as PoolWaiter;
    if (this.waitHead > 64 && this.waitHead * 2 > this.waiters.length) {
      this.waiters.splice(0, this.waitHead);
      this.waitHead = 0;
    }
    w.poolWait = undefined;
    this.cluster.pendingRequests--;
    return w;
  }

  onConnected(conn: UpstreamConnection): void {
    this.owner.recentNow = this.owner.clock.now();
    conn.connectTimer?.cancel();
    conn.connectTimer = undefined;
    const owner = this.connectingOwner.get(conn);
    if (owner) {
      this.connectingOwner.delete(conn);
      owner.poolWait = undefined;
      this.cluster.pendingRequests--;
      this.lend(conn, owner);
      return;
    }
    // Its waiter left; serve the queue or keep it idle.
    conn.lent = true;
    this.busy++;
    this.release(conn);
  }

  onConnectFailed(conn: UpstreamConnection, reason: string): void {
    conn.connectTimer?.cancel();
    conn.connectTimer = undefined;
    this.open--;
    this.cluster.connections--;
    this.owner.connectFailed(this.endpoint);
    const owner = this.connectingOwner.get(conn);
    const detail = `connect to ${this.endpoint.address} failed: ${reason}`;
    if (owner) {
      this.connectingOwner.delete(conn);
      owner.poolWait = undefined;
      this.cluster.pendingRequests--;
      owner.onPoolFailure('connect', detail);
    }
    // Queued waiters have nothing left to wait for when no connection of this endpoint is open.
    if (this.open === 0) {
      for (let w = this.nextWaiter(); w; w = this.nextWaiter()) w.onPoolFailure('connect', detail);
    }
  }

  /** A connection finished a response: reuse it, hand it to a waiter, or close it. */
  release(conn: UpstreamConnection): void {
    if (conn.lent) {
      conn.lent = false;
      this.busy--;
    }
    if (!conn.reusable || conn.closed || this.closed) {
      conn.destroy();
      return;
    }
    const w = this.nextWaiter();
    if (w) {
      this.lend(conn, w);
      return;
    }
    conn.idleSince = this.owner.recentNow;
    this.idle.push(conn);
  }

  /** A connection is gone (closed by either side). */
  onClosed(conn: UpstreamConnection): void {
    if (!conn.connected) return; // counted by onConnectFailed
    this.open--;
    this.cluster.connections--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    if (conn.lent) {
      conn.lent = false;
      this.busy--;
    }
    // A slot is free: the next waiter may open a new connection.
    if (this.waiting > 0 && !this.closed && this.open < this.cluster.config.pool.maxConnectionsPerEndpoint) {
      const w = this.nextWaiter()!;
      this.connectFor(w);
    }
  }

  /** Closes idle connections past their idle timeout. */
  sweep(now: number): void {
    const configured = this.cluster.config.pool.idleTimeout;
    // Oldest first: LIFO reuse leaves them at the bottom of the stack.
    while (this.idle.length > 0) {
      const conn = this.idle[0]!;
      let limit = configured;
      if (conn.keepAliveMs >= 0) limit = Math.min(limit, Math.max(conn.keepAliveMs - KEEP_ALIVE_MARGIN_MS, conn.keepAliveMs / 2));
      if (now - conn.idleSince < limit) break;
      conn.destroy();
    }
  }

  /** Stops pooling: idle connections close now, busy ones when their response ends. */
  close(): void {
    this.closed = true;
    for (const conn of [...this.idle]) conn.destroy();
    for (const [conn, w] of [...this.connectingOwner]) {
      this.connectingOwner.delete(conn);
      w.poolWait = undefined;
      this.cluster.pendingRequests--;
      w.onPoolFailure('connect', `endpoint ${this.endpoint.address} was removed`);
    }
    for (let w = this.nextWaiter(); w; w = this.nextWaiter()) w.onPoolFailure('connect', `endpoint ${this.endpoint.address} was removed`);
  }
}

/** The pools of one cluster, kept in its ClusterState so they outlive config snapshots. */
export class ClusterPools {
  private readonly pools = new Map<EndpointState, EndpointPool>();
  /** How connections are opened (net.connect; a benchmark may replace it). */
  connector: Connector = netConnector;
  /** A recent clock reading (the last response head's), good enough for idle-since times. */
  recentNow = 0;
  private readonly openedCounter;
  private readonly rejectCounters;

  constructor(
    readonly cluster: ClusterState,
    readonly clock: Clock,
    private readonly metrics: ProxyMetrics,
  ) {
    this.openedCounter = metrics.upstreamConnectionsOpened.labels(cluster.name);
    this.rejectCounters = {
      pending: metrics.breakerRejections.labels(cluster.name, 'pending'),
      connections: metrics.breakerRejections.labels(cluster.name, 'connections'),
    };
  }

  get(ep: EndpointState): EndpointPool {
    let p = this.pools.get(ep);
    if (!p) {
      p = new EndpointPool(this, ep);
      this.pools.set(ep, p);
    }
    return p;
  }

  opened(): void {
    this.openedCounter.inc();
  }

  connectFailed(ep: EndpointState): void {
    this.metrics.upstreamConnectFailures.inc({ cluster: this.cluster.name, endpoint: ep.address });
  }

  rejected(resource: 'pending' | 'connections'): void {
    this.rejectCounters[resource].inc();
  }

  /** Closes one idle connection of another endpoint so `pool` may open one under maxConnections. */
  evictIdle(pool: EndpointPool): boolean {
    for (const p of this.pools.values()) {
      if (p !== pool && p.idle.length > 0) {
        p.idle.shift()!.destroy();
        return true;
      }
    }
    return false;
  }

  /** Drops the pools of endpoints no longer in the cluster (after a config swap). */
  sync(): void {
    const live = new Set(this.cluster.endpoints);
    for (const [ep, p] of this.pools) {
      if (!live.has(ep)) {
        p.close();
        this.pools.delete(ep);
      }
    }
  }

  sweep(now: number): void {
    if (now > this.recentNow) this.recentNow = now;
    for (const p of this.pools.values()) p.sweep(now);
  }

  /** Connections by state, for the upstream connections gauge. */
  counts(): { active: number; idle: number; connecting: number } {
    let active = 0;
    let idle = 0;
    let open = 0;
    for (const p of this.pools.values()) {
      active += p.busy;
      idle += p.idle.length;
      open += p.open;
    }
    return { active, idle, connecting: Math.max(0, open - active - idle) };
  }

  close(): void {
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }
}
