// The proxy's end of the control-plane stream (proto/tsmesh/discovery/v1/discovery.proto):
// subscribes with its node name and token, turns each snapshot into the YAML-shaped document,
// validates it like a file, applies it to the ConfigTarget in one swap, and ACKs; a snapshot
// that does not validate or cannot be applied (e.g. a listener address it cannot bind) is
// NACKed with every reason while the running config stays. Snapshots are handled one at a
// time, in order. Each applied snapshot is written to the disk cache.
//
// A lost stream is reopened after an exponential backoff with full jitter (a random delay
// between 0 and min(max, base * 2^attempt)), on a fresh channel so that the delay is ours
// alone. The connection state is exposed for /config_dump and the controlPlaneConnected metric.
import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceClient,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../../proto/gen/tsmesh/discovery/v1/discovery.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { DiskCache } from './disk-cache.js';
import type { ConfigTarget } from './target.js';
import { validateConfig } from './validate.js';
import { fromWire } from './wire.js';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'stopped';

export interface ControlPlaneClientStatus {
  readonly address: string;
  readonly node: string;
  readonly state: ConnectionState;
  /** When the state last changed. */
  readonly since: Date;
  /** Why the last stream ended or could not start. */
  readonly lastError: string | undefined;
  readonly lastAckedVersion: string | undefined;
  readonly lastNackedVersion: string | undefined;
  readonly lastNackError: string | undefined;
  /** Failed connection attempts since the last good stream. */
  readonly failedAttempts: number;
}

/** The proxy's own values for fields that the streamed config never overrides. */
export interface BootstrapFields {
  readonly admin?: { address?: string };
  readonly controlPlane: { address: string; node: string; token?: string; cacheDir?: string };
}

export interface ControlPlaneClientOptions {
  readonly target: ConfigTarget;
  readonly bootstrap: BootstrapFields;
  readonly cache?: DiskCache;
  readonly metrics?: ProxyMetrics;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Backoff between attempts: base and cap in ms (default 250 ms and 15 s). */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
  /** Shown in the control plane's status. */
  readonly metadata?: Record<string, string>;
  readonly log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  readonly channelOptions?: grpc.ChannelOptions;
}

type Listener = (status: ControlPlaneClientStatus) => void;

/** A stream that stayed up this long was a good one: the next failure starts the backoff over. */
const GOOD_STREAM_MS = 5000;

/** The YAML-shaped document with the bootstrap's admin and controlPlane in place of the streamed ones. */
export function withBootstrap(document: Record<string, unknown>, bootstrap: BootstrapFields): Record<string, unknown> {
  const { admin: _a, controlPlane: _c, ...rest } = document;
  return { ...rest, ...(bootstrap.admin ? { admin: bootstrap.admin } : {}), controlPlane: bootstrap.controlPlane };
}

export class ControlPlaneClient {
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly listeners = new Set<Listener>();
  private st: ControlPlaneClientStatus;
  private channel: AggregatedDiscoveryServiceClient | undefined;
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private connectedAt: number | undefined;
  private retry: TimerHandle | undefined;
  private attempt = 0;
  /** Applies run one at a time: snapshots in order, and the disk-cache boot never races them. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ControlPlaneClientOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.baseMs = opts.backoff?.baseMs ?? 250;
    this.maxMs = opts.backoff?.maxMs ?? 15_000;
    const cp = opts.bootstrap.controlPlane;
    this.st = {
      address: cp.address,
      node: cp.node,
      state: 'disconnected',
      since: new Date(),
      lastError: undefined,
      lastAckedVersion: undefined,
      lastNackedVersion: undefined,
      lastNackError: undefined,
      failedAttempts: 0,
    };
  }

  get status(): ControlPlaneClientStatus {
    return this.st;
  }

  /** Called on every status change (state, ACK, NACK); returns an unsubscribe function. */
  onStatus(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (this.st.state === 'stopped') throw new Error('a stopped control-plane client cannot start again');
    if (this.call || this.retry) return;
    this.connect();
  }

  /** Closes the stream; the running config stays. */
  async stop(): Promise<void> {
    this.retry?.cancel();
    this.retry = undefined;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.channel?.close();
    this.channel = undefined;
    this.update({ state: 'stopped' });
    await this.queue.catch(() => {});
  }

  /**
   * Applies the disk cache (source disk-cache) if nothing is running yet. Goes through the
   * same queue as snapshots, so it never replaces one that arrived first.
   */
  bootFromCache(): Promise<{ applied: boolean; reason: string }> {
    return this.enqueue(async () => {
      const cache = this.opts.cache;
      if (this.opts.target.current) return { applied: false, reason: `already running version ${this.opts.target.current.version}` };
      if (!cache) return { applied: false, reason: 'no cacheDir configured' };
      const loaded = await cache.load();
      if (!loaded.ok) return { applied: false, reason: loaded.error };
      const cached = loaded.value;
      if (cached.node !== this.st.node) return { applied: false, reason: `${cache.path} belongs to node ${cached.node}, not ${this.st.node}` };
      const checked = validateConfig(withBootstrap(cached.document, this.opts.bootstrap));
      if (!checked.ok) return { applied: false, reason: `cached version ${cached.version} is not valid: ${checked.errors.join('; ')}` };
      const r = await this.opts.target.apply(checked.value, { version: cached.version, source: 'disk-cache' });
      if (!r.ok) return { applied: false, reason: `cached version ${cached.version} cannot be applied: ${r.errors.join('; ')}` };
      this.log('info', 'config booted from the disk cache', { version: cached.version, savedAt: cached.savedAt });
      return { applied: true, reason: `version ${cached.version} saved at ${cached.savedAt}` };
    });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private log(level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, { node: this.st.node, ...fields });
  }

  private update(patch: Partial<ControlPlaneClientStatus>): void {
    const stateChanged = patch.state !== undefined && patch.state !== this.st.state;
    this.st = { ...this.st, ...patch, ...(stateChanged ? { since: new Date() } : {}) };
    if (stateChanged) this.opts.metrics?.controlPlaneConnected.set(this.st.state === 'connected' ? 1 : 0);
    for (const fn of this.listeners) fn(this.st);
  }

  private connect(): void {
    this.retry = undefined;
    this.update({ state: 'connecting' });
    this.channel?.close();
    const channel = new AggregatedDiscoveryServiceClient(this.st.address, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      ...this.opts.channelOptions,
    });
    this.channel = channel;
    const metadata = new grpc.Metadata();
    const token = this.opts.bootstrap.controlPlane.token;
    if (token) metadata.set('authorization', `Bearer ${token}`);
    const call = channel.streamConfig(metadata);
    this.call = call;
    this.connectedAt = undefined;

    call.on('metadata', () => {
      if (this.call !== call) return;
      this.connectedAt = this.clock.now();
      this.update({ state: 'connected', lastError: undefined, failedAttempts: 0 });
      this.log('info', 'control-plane stream connected', { address: this.st.address });
    });
    call.on('data', (res: DiscoveryResponse) => {
      if (this.call !== call) return;
      this.attempt = 0;
      void this.enqueue(() => this.handle(call, res));
    });
    call.on('error', (err: grpc.ServiceError) => this.lost(call, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => this.lost(call, 'the control plane closed the stream'));
    call.write({
      node: { id: this.st.node, metadata: this.opts.metadata ?? {} },
      versionInfo: this.opts.target.current?.version ?? '',
      responseNonce: '',
      errorDetail: undefined,
    });
  }

  private lost(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>, why: string): void {
    if (this.call !== call) return;
    this.call = undefined;
    call.cancel();
    if (this.connectedAt !== undefined && this.clock.now() - this.connectedAt >= GOOD_STREAM_MS) this.attempt = 0;
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    const delay = this.random() * ceiling;
    this.update({ state: 'disconnected', lastError: why, failedAttempts: this.st.failedAttempts + (this.connectedAt === undefined ? 1 : 0) });
    this.log('warn', 'control-plane stream lost; reconnecting', { error: why, retryInMs: Math.round(delay) });
    this.retry = this.clock.setTimer(() => this.connect(), delay);
  }

  private async handle(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>, res: DiscoveryResponse): Promise<void> {
    const target = this.opts.target;
    const version = res.versionInfo;
    const answer = (errorDetail: DiscoveryRequest['errorDetail']) => {
      // A response from a stream that has ended is answered on the next one by its first request.
      if (this.call !== call) return;
      call.write({ node: undefined, versionInfo: target.current?.version ?? '', responseNonce: res.nonce, errorDetail });
    };
    const nack = (message: string, details: string[]) => {
      this.opts.metrics?.controlPlaneUpdates.inc({ result: 'nacked' });
      this.update({ lastNackedVersion: version, lastNackError: `${message}: ${details.join('; ')}` });
      this.log('warn', 'snapshot refused (NACK); the running config stays', { version, errors: details });
      answer({ code: grpc.status.INVALID_ARGUMENT, message, details });
    };

    if (!res.snapshot) return nack(`version ${version} refused`, ['the response carries no snapshot']);
    const streamed = fromWire(res.snapshot);
    const checked = validateConfig(withBootstrap(streamed, this.opts.bootstrap));
    if (!checked.ok) return nack(`version ${version} is not a valid config`, checked.errors);
    let applied;
    try {
      applied = await target.apply(checked.value, { version, source: 'control-plane' });
    } catch (err) {
      applied = { ok: false as const, errors: [(err as Error).message] };
    }
    if (!applied.ok) return nack(`version ${version} cannot be applied`, applied.errors);
    this.opts.metrics?.controlPlaneUpdates.inc({ result: 'acked' });
    this.update({ lastAckedVersion: version });
    this.log('info', 'snapshot applied (ACK)', { version });
    answer(undefined);
    if (this.opts.cache) {
      await this.opts.cache.save({ version, node: this.st.node, document: streamed }).catch((err: Error) => {
        this.log('warn', 'could not write the disk cache; the config is applied', { error: err.message, path: this.opts.cache!.path });
      });
    }
  }
}
