// A listening socket and the client connections it accepted. Every connection is accepted
// (a large backlog keeps clients from ever seeing "connection refused" below maxConnections);
// above maxConnections a connection still gets an answer, 503 overloaded with
// Connection: close, instead of a refusal or a hang. One sweeper tick per runtime checks the
// connections' deadlines (header, idle, linger): no timer per connection or per request.
import { createServer, type Server, type Socket } from 'node:net';
import type { Clock } from './clock.js';
import { parseHostPort } from './config/units.js';
import { ClientConnection } from './connection.js';
import { closeListenHandle, duplicateListenHandles } from './net/listen-descriptors.js';
import { buildLocalResponse } from './http/serialize.js';
import type { ListenerConfig } from './config/schema.js';
import type { ListenerSnapshot } from './snapshot-types.js';
import type { LoggedRequest } from './telemetry/access-log.js';
import type { ProxyMetrics } from './telemetry/metrics.js';

const OVERFLOW_LINGER_MS = 1000;
const OVERLOADED = buildLocalResponse(503, 'overloaded', 'overloaded: the proxy is at its connection limit\n', [['retry-after', '1']], true, 0);

export class Listener {
  readonly server: Server;
  /** Servers on further descriptors of the same socket (acceptDescriptors > 1). */
  private extraServers: Server[] = [];
  readonly connections = new Set<ClientConnection>();
  /** Requests in flight on this listener. */
  active = 0;
  /** Draining: responses carry Connection: close and idle connections are closed. */
  draining = false;
  /** Closing: requests still arriving are answered 503 draining. */
  closing = false;
  private accepting = false;
  private serverClosed: Promise<void> | undefined;
  private readonly overflow = new Map<Socket, number>();
  private idleWaiters: Array<() => void> = [];
  private readonly connectionsTotal: { inc(): void };
  private readonly overflowTotal: { inc(): void };
  /** The config's snapshot; swapped by `activate` (one assignment), read at each request's start. */
  snapshot!: ListenerSnapshot;
  /** Connections accepted between listen() and the first activate(), with the server that accepted each. */
  private early: Array<[Socket, Server]> | undefined = [];

  constructor(
    private readonly bindConfig: ListenerConfig,
    readonly clock: Clock,
    metrics: ProxyMetrics,
  ) {
    this.server = this.createAcceptingServer();
    this.connectionsTotal = metrics.downstreamConnectionsTotal.labels(bindConfig.name);
    this.overflowTotal = metrics.downstreamConnectionsOverflow.labels(bindConfig.name);
  }

  /** Installs a new snapshot: requests starting from now use it; those in flight keep theirs. */
  activate(snapshot: ListenerSnapshot): void {
    this.snapshot = snapshot;
    const early = this.early;
    this.early = undefined;
    if (early) for (const [socket, server] of early) this.onConnection(socket, server);
  }

  get name(): string {
    return (this.snapshot?.config ?? this.bindConfig).name;
  }

  /** The address as configured. */
  get address(): string {
    return this.bindConfig.address;
  }

  /** The actual bound address (with the real port when the config said 0). */
  get boundAddress(): string {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return this.address;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  get port(): number {
    const a = this.server.address();
    return a !== null && typeof a !== 'string' ? a.port : 0;
  }

  listen(): Promise<void> {
    const hp = parseHostPort(this.bindConfig.address)!;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.server.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        this.server.off('error', onError);
        this.accepting = true;
        this.server.on('error', noop);
        resolve();
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host: hp.host, port: hp.port, backlog: this.bindConfig.backlog });
    }).then(() => this.listenOnMoreDescriptors());
  }

  /** Paused on accept: ClientConnection takes the handle over (net/accepted-socket.ts). */
  private createAcceptingServer(): Server {
    const server: Server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.onConnection(socket, server));
    return server;
  }

  private async listenOnMoreDescriptors(): Promise<void> {
    const extra = this.bindConfig.acceptDescriptors - 1;
    if (extra <= 0 || process.platform !== 'linux') return;
    let handles;
    try {
      handles = await duplicateListenHandles(this.server, extra);
    } catch (err) {
      // Accepting still works, one connection per poll: worth a warning, not a failure.
      process.emitWarning(`listener ${this.bindConfig.name}: accepting on one descriptor only (${(err as Error).message})`);
      return;
    }
    for (const handle of handles) {
      if (!this.accepting) {
        // Stopped meanwhile: these descriptors are not wanted any more.
        closeListenHandle(handle);
        continue;
      }
      const server = this.createAcceptingServer();
      server.on('error', noop);
      // With the backlog again: listen() on the shared socket sets its accept queue for all descriptors.
      await new Promise<void>((resolve) => server.listen(handle, this.bindConfig.backlog, resolve));
      this.extraServers.push(server);
    }
  }

  private onConnection(socket: Socket, server: Server): void {
    if (this.early) {
      this.early.push([socket, server]);
      return;
    }
    const cfg = this.snapshot.config;
    if (this.connections.size >= cfg.maxConnections) {
      this.overflowTotal.inc();
      socket.on('error', noop);
      socket.on('close', () => this.overflow.delete(socket));
      socket.resume();
      socket.end(OVERLOADED);
      this.overflow.set(socket, this.clock.now() + OVERFLOW_LINGER_MS);
      this.snapshot.unroutedStats.record(503, 'overloaded', 0);
      if (this.snapshot.accessLog.enabled) {
        const addr = socket.remoteAddress ?? '';
        this.logRejection(503, 'overloaded', { remoteAddress: addr.startsWith('::ffff:') ? addr.slice(7) : addr, socket });
      }
      return;
    }
    this.connectionsTotal.inc();
    const conn = new ClientConnection(socket, this, server);
    this.connections.add(conn);
  }

  requestStarted(): void {
    this.active++;
  }

  requestFinished(): void {
    this.active--;
    if (this.active === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** A request refused before it became an exchange (400/408/413/431): counted and logged. */
  rejected(conn: ClientConnection, status: number, _message: string): void {
    this.snapshot.unroutedStats.record(status, 'bad_request', 0);
    if (this.snapshot.accessLog.enabled) this.logRejection(status, 'bad_request', conn);
  }

  private logRejection(status: number, reason: 'bad_request' | 'overloaded', client: LoggedRequest['conn']): void {
    const snap = this.snapshot;
    const now = this.clock.now();
    snap.accessLog.log(
      {
        requestHead: { method: '', target: '', version: 11, header: () => undefined },
        status,
        reason,
        route: undefined,
        cluster: undefined,
        endpoint: undefined,
        attempts: 0,
        startTime: now,
        upstreamMs: -1,
        received: 0,
        responseBytes: 0,
        requestId: undefined,
        conn: client,
      },
      now,
      snap.config.name,
    );
  }

  connectionClosed(conn: ClientConnection): void {
    this.connections.delete(conn);
  }

  /** Checks deadlines: header timeouts, idle keep-alive connections, lingering closes. */
  sweep(now: number): void {
    for (const conn of this.connections) {
      const d = conn.deadline;
      if (d !== 0 && now >= d) conn.onDeadline();
    }
    for (const [socket, until] of this.overflow) {
      if (now >= until) {
        socket.destroy();
        this.overflow.delete(socket);
      }
    }
  }

  /**
   * Stops accepting new connections at once; open ones keep working. (net.Server's close
   * callback waits for every connection to end, so it is not awaited here; see `closed`.)
   */
  stopAccepting(): Promise<void> {
    if (this.accepting) {
      this.accepting = false;
      const servers = [this.server, ...this.extraServers];
      this.serverClosed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(noop);
    }
    return Promise.resolve();
  }

  /** Resolves when the server stopped listening and all its connections ended. */
  closed(): Promise<void> {
    return this.serverClosed ?? Promise.resolve();
  }

  /** Enters drain: responses say Connection: close, idle keep-alive connections are closed now. */
  startDrain(): void {
    this.draining = true;
    for (const conn of this.connections) conn.closeIfIdle();
  }

  /** Resolves when no request is in flight on this listener. */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The drain is over (all requests done, or its timeout passed): close what is left. */
  finishDrain(): void {
    this.closing = true;
    this.draining = true;
    for (const conn of [...this.connections]) conn.drainNow();
  }

  /** Ends everything still open (after a drain's timeout, or on close). */
  destroyAll(): void {
    this.closing = true;
    for (const conn of this.connections) conn.destroy();
    for (const socket of this.overflow.keys()) socket.destroy();
    this.overflow.clear();
    for (const [socket] of this.early ?? []) socket.destroy();
  }
}

function noop(): void {}
