// Starting a whole proxy the way `tsmesh proxy` does, from a static config file or from a
// bootstrap naming the control plane; tests start real proxies through the same functions.
//
// From a bootstrap, the admin listener is bound first (so /ready answers 503 and /config_dump
// shows the connection while no config is applied), its address is sent to the control plane
// in the node metadata (`adminAddress`, for `tsmesh status` and `tsmesh stat --server`), then
// the stream starts: the first snapshot, or the disk copy when the control plane is away
// (config/bootstrap.ts), is applied through ProxyRuntime.apply.
//
// In both cases rate limits come from ProxyRateLimiters: `global: true` limits count in the
// config's Redis (rebuilt when redis.url changes between snapshots), others locally.
import { hostname } from 'node:os';
import { startFromControlPlane, type BootOptions, type ControlPlaneBoot } from './config/bootstrap.js';
import type { ProxyConfig } from './config/schema.js';
import type { RateLimiterFactory } from './policy/rate-limiter.js';
import { ProxyRateLimiters } from './ratelimit/proxy-rate-limiters.js';
import { ProxyRuntime, ProxyStartError, type StartProxyOptions } from './runtime.js';
import { ProxyMetrics } from './telemetry/metrics.js';

/** The runtime's own options pass through (metrics, clock, policies, and whatever it gains). */
export interface RunProxyOptions extends Omit<StartProxyOptions, 'config' | 'version' | 'source' | 'rateLimiters' | 'rateLimiterProvider'> {
  /** This proxy's name among those sharing global rate limits (default: the control-plane node, else host-pid). */
  readonly proxyId?: string;
  /** Local limiters, for non-global limits and the global ones' fallback (default: token buckets). */
  readonly localRateLimiters?: RateLimiterFactory;
  /** REDIS_URL is read here when a config has no redis.url (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long a replaced Redis connection serves requests still on the old snapshot (default 10 s). */
  readonly rateLimiterGraceMs?: number;
  readonly log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunningProxy {
  readonly runtime: ProxyRuntime;
  readonly rateLimiters: ProxyRateLimiters;
  /** The control-plane stream and how the proxy booted; undefined for a static config. */
  readonly controlPlane: ControlPlaneBoot | undefined;
  /**
   * SIGTERM: closes the control-plane stream (no snapshot lands in the middle of a drain),
   * drains (/ready 503, drain.delay, then in-flight requests finish within drain.timeout) and
   * closes everything.
   */
  shutdown(): Promise<void>;
  /** Stops at once: stream, listeners, connections, Redis. */
  close(): Promise<void>;
}

function running(runtime: ProxyRuntime, rateLimiters: ProxyRateLimiters, controlPlane: ControlPlaneBoot | undefined): RunningProxy {
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await controlPlane?.stop();
      await runtime.close();
    })();
    return closing;
  };
  return {
    runtime,
    rateLimiters,
    controlPlane,
    close,
    shutdown: async () => {
      await controlPlane?.stop();
      await runtime.drain();
      await close();
    },
  };
}

/** The runtime's options out of ours (what is left once ours are taken out). */
function runtimeOptions(opts: RunProxyOptions & { version?: string; boot?: unknown; onAdmin?: unknown }): Omit<StartProxyOptions, 'config'> {
  const { proxyId: _p, localRateLimiters: _l, env: _e, rateLimiterGraceMs: _g, log: _log, version: _v, boot: _b, onAdmin: _o, ...runtime } = opts;
  return runtime;
}

function rateLimitersFor(proxyId: string, metrics: ProxyMetrics, opts: RunProxyOptions): ProxyRateLimiters {
  return new ProxyRateLimiters({
    proxyId,
    metrics,
    local: opts.localRateLimiters,
    env: opts.env,
    graceMs: opts.rateLimiterGraceMs,
    onBackendState: (up, why, url) => opts.log?.(up ? 'info' : 'warn', up ? 'global rate limits: Redis reachable' : 'global rate limits: Redis unreachable, deciding locally', { redis: url, why }),
  });
}

/** Runs a proxy on a static config; rejects with ProxyStartError listing every reason it cannot start. */
export async function runStaticProxy(config: ProxyConfig, opts: RunProxyOptions & { version?: string } = {}): Promise<RunningProxy> {
  const metrics = opts.metrics ?? new ProxyMetrics();
  const rateLimiters = rateLimitersFor(opts.proxyId ?? `${hostname()}-${process.pid}`, metrics, opts);
  const runtime = new ProxyRuntime({ ...runtimeOptions(opts), metrics, rateLimiterProvider: rateLimiters });
  const r = await runtime.apply(config, { version: opts.version ?? 'file', source: 'file' });
  if (!r.ok) {
    await runtime.close();
    throw new ProxyStartError(r.errors);
  }
  return running(runtime, rateLimiters, undefined);
}

/**
 * Runs a proxy from a bootstrap (admin + controlPlane): binds the admin listener, then
 * resolves once the first config is applied, from the control plane or the disk cache, or
 * once the control plane turned out unreachable with no usable disk copy (bootedFrom 'none':
 * the proxy keeps trying, /ready stays 503). Rejects if the admin address cannot be bound.
 */
export async function runControlPlaneProxy(
  bootstrap: ProxyConfig,
  opts: RunProxyOptions & {
    boot?: Omit<BootOptions, 'metrics' | 'log' | 'onClient'>;
    /** Called once the admin listener is bound, before the first config is awaited. */
    onAdmin?: (address: string) => void;
  } = {},
): Promise<RunningProxy> {
  const cp = bootstrap.controlPlane;
  if (!cp) throw new Error('runControlPlaneProxy: the bootstrap has no controlPlane');
  const metrics = opts.metrics ?? new ProxyMetrics();
  const rateLimiters = rateLimitersFor(opts.proxyId ?? cp.node, metrics, opts);
  const runtime = new ProxyRuntime({ ...runtimeOptions(opts), metrics, rateLimiterProvider: rateLimiters });
  metrics.controlPlaneConnected.set(0);
  try {
    await runtime.startAdmin(bootstrap.admin.address);
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const adminAddress = runtime.addresses.admin;
  if (adminAddress) opts.onAdmin?.(adminAddress);
  let boot: ControlPlaneBoot;
  try {
    boot = await startFromControlPlane(bootstrap, runtime, {
      ...opts.boot,
      metrics,
      log: opts.log,
      metadata: { ...opts.boot?.metadata, ...(adminAddress ? { adminAddress } : {}) },
      onClient: (client) => {
        runtime.controlPlane = client;
      },
    });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  return running(runtime, rateLimiters, boot);
}
