// The running proxy: listeners, cluster state and pools, admin, metrics. `apply` compiles a
// config into per-listener snapshots (routers, handler chains, metric children) and swaps
// them in with one reference assignment per listener; in-flight requests finish on the
// snapshot they started with. Listeners whose address did not change are kept (their open
// connections keep working); new ones are bound BEFORE anything changes, so a config with an
// unbindable address is refused whole and the running config stays.
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { ProxyConfig } from './config/schema.js';
import type { AppliedConfig, ConfigSource, ConfigTarget } from './config/target.js';
import type { ValidationResult } from './config/validate.js';
import { parseHostPort } from './config/units.js';
import { DEFAULT_REPLAY_LIMIT } from './exchange.js';
import { Listener } from './listener.js';
import { buildChain, POLICY_BUILDERS, type PolicyBuilder } from './policy/chain.js';
import type { RateLimiterFactory, RateLimiterProvider } from './policy/rate-limiter.js';
import type { ControlPlaneClientStatus } from './config/control-plane-client.js';
import { StateRegistry } from './policy/state-store.js';
import { localRateLimiterFactory } from './policy/token-bucket.js';
import type { PolicyBuildContext } from './policy/types.js';
import { Router } from './router.js';
import type { ListenerSnapshot, RouteTarget } from './snapshot-types.js';
import { AccessLog } from './telemetry/access-log.js';
import { HotStats } from './telemetry/hot-stats.js';
import { ProxyMetrics } from './telemetry/metrics.js';
import { createTracer, type Tracer } from './telemetry/tracing.js';
import { ClusterRegistry } from './upstream/cluster-state.js';
import { ClusterDispatch, upstreamHandler } from './upstream/dispatch.js';
import { HealthCheckManager } from './upstream/health-check.js';
import { AdminServer } from './admin.js';

export interface StartProxyOptions {
  readonly config: ProxyConfig;
  readonly version?: string;
  readonly source?: ConfigSource;
  readonly clock?: Clock;
  readonly metrics?: ProxyMetrics;
  /** The policy chain's builders, in order (default: POLICY_BUILDERS). */
  readonly policies?: readonly PolicyBuilder[];
  /** Where rate-limit tokens come from (default: local token buckets on `clock`; `global: true` limits then count per proxy). */
  readonly rateLimiters?: RateLimiterFactory;
  /** Gives the rate-limiter factory per applied config (e.g. rebuilt when redis.url changes); wins over rateLimiters. */
  readonly rateLimiterProvider?: RateLimiterProvider;
  /** Start the admin listener (default true). */
  readonly admin?: boolean;
}

function listenerKey(name: string, address: string): string {
  // Port 0 means "any": such a listener is the same one while its name and address are.
  return parseHostPort(address)?.port === 0 ? `${name}|${address}` : address;
}

export class ProxyRuntime implements ConfigTarget {
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  readonly stats: HotStats;
  current: AppliedConfig | undefined;
  /** True once a config is applied, false again once a drain started: /ready answers 503 while false. */
  ready = false;
  /** The control-plane stream feeding this proxy, if one does: /config_dump shows its state. */
  controlPlane: { readonly status: ControlPlaneClientStatus } | undefined;

  private readonly clusters = new ClusterRegistry();
  private readonly routeStates = new StateRegistry();
  private readonly policies: readonly PolicyBuilder[];
  private rateLimiters: RateLimiterFactory;
  private readonly rateLimiterProvider: RateLimiterProvider | undefined;
  /** Active health checks of the clusters that configure them; follows every applied config. */
  private readonly health: HealthCheckManager;
  private listeners = new Map<string, Listener>();
  private readonly retiring = new Set<Listener>();
  private admin: AdminServer | undefined;
  private readonly withAdmin: boolean;
  private accessLog: AccessLog | undefined;
  /** The tracer of the running config (undefined when tracing is off) and the config it was made from. */
  private tracer: Tracer | undefined;
  private tracingConfig: ProxyConfig['tracing'] | undefined;
  /** Tracers of earlier configs, still ending the spans of requests that started under them. */
  private readonly retiringTracers = new Set<Tracer>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweepEvery = 0;
  private applying: Promise<unknown> = Promise.resolve();
  private drainPromise: Promise<void> | undefined;
  private closed = false;

  constructor(opts: Omit<StartProxyOptions, 'config' | 'version' | 'source'>) {
    this.clock = opts.clock ?? systemClock;
    this.metrics = opts.metrics ?? new ProxyMetrics();
    this.stats = new HotStats(this.metrics);
    this.policies = opts.policies ?? POLICY_BUILDERS;
    this.rateLimiters = opts.rateLimiters ?? localRateLimiterFactory(this.clock);
    this.rateLimiterProvider = opts.rateLimiterProvider;
    this.health = new HealthCheckManager({ clock: this.clock, metrics: this.metrics });
    this.withAdmin = opts.admin ?? true;
    this.stats.addGauge(() => this.updateGauges());
  }

  /** Applies a config: all of it, or nothing (with every reason listed). Applies run one at a time. */
  apply(config: ProxyConfig, meta: { version: string; source: ConfigSource }): Promise<ValidationResult<AppliedConfig>> {
    const run = this.applying.then(() => this.applyNow(config, meta));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: ProxyConfig, meta: { version: string; source: ConfigSource }): Promise<ValidationResult<AppliedConfig>> {
    if (this.closed) return { ok: false, errors: ['the proxy is closed'] };
    // 1. Bind what is new; nothing running changes until every bind succeeded.
    const next = new Map<string, Listener>();
    const fresh: Listener[] = [];
    const errors: string[] = [];
    for (const lc of config.listeners) {
      const key = listenerKey(lc.name, lc.address);
      const existing = this.listeners.get(key);
      if (existing) {
        next.set(key, existing);
        continue;
      }
      const listener = new Listener(lc, this.clock, this.metrics);
      try {
        await listener.listen();
        fresh.push(listener);
        next.set(key, listener);
      } catch (err) {
        errors.push(`listeners.${lc.name}.address: cannot listen on ${lc.address}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    let admin = this.admin;
    let newAdmin: AdminServer | undefined;
    if (this.withAdmin && errors.length === 0 && (!admin || admin.address !== config.admin.address)) {
      newAdmin = new AdminServer(this, config.admin.address);
      try {
        await newAdmin.listen();
      } catch (err) {
        errors.push(`admin.address: cannot listen on ${config.admin.address}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        newAdmin = undefined;
      }
    }
    let rateLimiters = this.rateLimiters;
    if (this.rateLimiterProvider && errors.length === 0) {
      try {
        rateLimiters = await this.rateLimiterProvider.forConfig(config);
      } catch (err) {
        errors.push(`redis: cannot set up rate limiters: ${(err as Error).message}`);
      }
    }
    // A changed tracing config gets a new tracer (its own exporter and resource); requests in
    // flight finish their spans on the one they started with.
    const tracingChanged = this.tracingConfig === undefined || !sameJson(this.tracingConfig, config.tracing);
    let tracer = this.tracer;
    if (errors.length === 0 && tracingChanged) {
      try {
        tracer = await createTracer(config.tracing, { resourceAttributes: resourceAttributesOf(config) });
      } catch (err) {
        errors.push(`tracing: cannot start the tracer: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (errors.length > 0) {
      await newAdmin?.close();
      if (tracer !== this.tracer) void tracer?.shutdown();
      for (const l of fresh) {
        await l.stopAccepting();
        l.destroyAll();
        await l.closed();
      }
      this.metrics.configApplies.inc({ result: 'rejected' });
      return { ok: false, errors };
    }

    // 2. Commit: cluster state, snapshots, then one assignment per listener. The two release
    // hooks of docs/policies.md run before the new policies are built: ClusterRegistry.sync
    // releases removed clusters (scrape hooks, gauges), StateRegistry.retain closes the rate
    // limiters of removed routes.
    this.rateLimiters = rateLimiters;
    const clusters = this.clusters.sync(config.clusters);
    for (const c of clusters.values()) ClusterDispatch.of(c, this.clock, this.metrics, this.stats).sync();
    this.routeStates.retain(config.listeners.flatMap((l) => l.routes.map((r) => r.name)));
    // Checkers are kept by cluster name with their streaks; removed or unchecked clusters stop.
    this.health.sync(clusters.values());
    const accessLog = this.accessLog && sameJson(this.accessLog.config, config.accessLog) ? this.accessLog : new AccessLog(config.accessLog, { onDrop: () => this.metrics.accessLogDropped.inc() });
    const oldAccessLog = this.accessLog !== accessLog ? this.accessLog : undefined;
    this.accessLog = accessLog;
    const oldTracer = this.tracer !== tracer ? this.tracer : undefined;
    const oldConfig = this.current?.config;
    this.tracer = tracer;
    this.tracingConfig = config.tracing;
    for (const lc of config.listeners) {
      const listener = next.get(listenerKey(lc.name, lc.address))!;
      listener.activate(this.compile(lc, clusters, meta.version, accessLog, tracer));
    }
    for (const [key, l] of this.listeners) if (!next.has(key)) this.retire(l, config);
    this.listeners = next;
    if (newAdmin) {
      const old = admin;
      this.admin = newAdmin;
      admin = newAdmin;
      if (old) void old.close();
    }
    if (oldAccessLog) setTimeout(() => void oldAccessLog.close(), 1000).unref();
    if (oldTracer) this.retireTracer(oldTracer, oldConfig);
    // Pools of clusters that are gone: idle connections close, busy ones when their response ends.
    this.closeRemovedClusters(clusters);

    const applied: AppliedConfig = { version: meta.version, source: meta.source, config, appliedAt: new Date() };
    this.current = applied;
    this.metrics.configInfo.reset();
    this.metrics.configInfo.set({ version: meta.version, source: meta.source }, 1);
    this.metrics.configApplies.inc({ result: 'applied' });
    if (!this.drainPromise) this.ready = true;
    this.scheduleSweeper(config);
    return { ok: true, value: applied };
  }

  /**
   * Binds the admin listener before any config is applied (a proxy waiting for the control
   * plane): /ready answers 503 and /config_dump shows the connection until a config arrives.
   * A config whose admin.address is this same address keeps this listener.
   */
  async startAdmin(address: string): Promise<void> {
    if (this.admin || !this.withAdmin) return;
    const admin = new AdminServer(this, address);
    try {
      await admin.listen();
    } catch (err) {
      throw new ProxyStartError([`admin.address: cannot listen on ${address}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
    this.admin = admin;
  }

  private knownDispatch = new Set<ClusterDispatch>();

  private closeRemovedClusters(live: Map<string, import('./upstream/cluster-state.js').ClusterState>): void {
    const now = new Set<ClusterDispatch>();
    for (const c of live.values()) now.add(ClusterDispatch.of(c, this.clock, this.metrics, this.stats));
    for (const d of this.knownDispatch) if (!now.has(d)) d.pools.close();
    this.knownDispatch = now;
  }

  private compile(
    lc: ProxyConfig['listeners'][number],
    clusters: Map<string, import('./upstream/cluster-state.js').ClusterState>,
    version: string,
    accessLog: AccessLog,
    tracer: Tracer | undefined,
  ): ListenerSnapshot {
    const clock = this.clock;
    const router = new Router<RouteTarget>(lc.routes, (route, clusterName) => {
      const cluster = clusters.get(clusterName)!;
      const dispatch = ClusterDispatch.of(cluster, clock, this.metrics, this.stats);
      const b: PolicyBuildContext = {
        clock,
        route,
        cluster,
        routeState: this.routeStates.of(route.name),
        metrics: this.metrics,
        rateLimiters: this.rateLimiters,
      };
      return {
        route,
        cluster,
        handler: buildChain(b, upstreamHandler(dispatch), this.policies),
        stats: this.stats.route(lc.name, route.name, cluster.name),
        replayLimit: route.retry?.replayBufferBytes ?? DEFAULT_REPLAY_LIMIT,
      };
    });
    return {
      config: lc,
      version,
      router,
      limits: { maxHeaderBytes: lc.maxHeaderBytes, maxHeaderFields: 128 },
      unroutedStats: this.stats.route(lc.name, '', ''),
      accessLog,
      tracer,
      clock,
    };
  }

  /**
   * Shuts a replaced tracer down once the requests that may still use it are over: the old
   * config's longest route timeout (at most a minute). Spans ended after that are dropped.
   */
  private retireTracer(tracer: Tracer, config: ProxyConfig | undefined): void {
    this.retiringTracers.add(tracer);
    let wait = 1000;
    for (const l of config?.listeners ?? []) for (const r of l.routes) wait = Math.max(wait, r.timeout + 1000);
    setTimeout(() => {
      if (!this.retiringTracers.delete(tracer)) return;
      void tracer.shutdown();
    }, Math.min(wait, 60_000)).unref();
  }

  /** A listener removed by a new config: stop accepting, let its requests finish, then close. */
  private retire(l: Listener, config: ProxyConfig): void {
    this.retiring.add(l);
    void (async () => {
      await l.stopAccepting();
      l.startDrain();
      await Promise.race([l.whenIdle(), sleep(config.drain.timeout)]);
      l.finishDrain();
      await sleep(100);
      l.destroyAll();
      this.retiring.delete(l);
    })();
  }

  private scheduleSweeper(config: ProxyConfig): void {
    let min = 1000;
    for (const l of config.listeners) min = Math.min(min, l.headerTimeout, l.idleTimeout);
    for (const c of config.clusters) min = Math.min(min, c.pool.idleTimeout);
    const every = Math.max(10, Math.min(250, Math.floor(min / 4)));
    if (this.sweeper && every === this.sweepEvery) return;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweepEvery = every;
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const l of this.listeners.values()) l.sweep(now);
    for (const l of this.retiring) l.sweep(now);
    for (const d of this.knownDispatch) d.pools.sweep(now);
  }

  private updateGauges(): void {
    const m = this.metrics;
    for (const l of [...this.listeners.values(), ...this.retiring]) {
      m.activeRequests.set({ listener: l.name }, l.active);
      m.downstreamConnections.set({ listener: l.name }, l.connections.size);
    }
    for (const d of this.knownDispatch) {
      const c = d.pools.counts();
      m.upstreamConnections.set({ cluster: d.cluster.name, state: 'active' }, c.active);
      m.upstreamConnections.set({ cluster: d.cluster.name, state: 'idle' }, c.idle);
      m.upstreamConnections.set({ cluster: d.cluster.name, state: 'connecting' }, c.connecting);
    }
  }

  /** Bound addresses by listener name (real ports when the config said 0), plus `admin`. */
  get addresses(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const l of this.listeners.values()) out[l.name] = l.boundAddress;
    if (this.admin) out.admin = this.admin.boundAddress;
    return out;
  }

  /** Listener ports by name (for tests). */
  port(listener: string): number {
    for (const l of this.listeners.values()) if (l.name === listener) return l.port;
    throw new Error(`no listener named ${listener}`);
  }

  get adminPort(): number {
    return this.admin?.port ?? 0;
  }

  /** In-flight requests on all listeners. */
  get activeRequests(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.active;
    for (const l of this.retiring) n += l.active;
    return n;
  }

  /**
   * Drains (SIGTERM): /ready turns 503 at once, traffic is still served for drain.delay, then
   * listeners stop accepting and responses say Connection: close; resolves when in-flight
   * requests finished or drain.timeout passed.
   */
  drain(): Promise<void> {
    if (!this.drainPromise) this.drainPromise = this.drainNow();
    return this.drainPromise;
  }

  get draining(): boolean {
    return this.drainPromise !== undefined;
  }

  private async drainNow(): Promise<void> {
    this.ready = false;
    const cfg = this.current?.config.drain ?? { delay: 0, timeout: 0 };
    await sleep(cfg.delay);
    const listeners = [...this.listeners.values()];
    await Promise.all(listeners.map((l) => l.stopAccepting()));
    for (const l of listeners) l.startDrain();
    await Promise.race([Promise.all(listeners.map((l) => l.whenIdle())), sleep(cfg.timeout)]);
    for (const l of listeners) l.finishDrain();
  }

  /** Stops everything now: listeners, connections, pools, health checks, admin, sweeper, access log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready = false;
    if (this.sweeper) clearInterval(this.sweeper);
    this.health.stop();
    const all = [...this.listeners.values(), ...this.retiring];
    for (const l of all) await l.stopAccepting();
    for (const l of all) l.destroyAll();
    await Promise.all(all.map((l) => l.closed()));
    for (const d of this.knownDispatch) d.pools.close();
    await this.admin?.close();
    await this.accessLog?.close();
    await this.rateLimiterProvider?.close();
    // Bounded (2 s each): an unreachable collector cannot hold up the exit.
    const tracers = [...this.retiringTracers, ...(this.tracer ? [this.tracer] : [])];
    this.retiringTracers.clear();
    this.tracer = undefined;
    await Promise.all(tracers.map((t) => t.shutdown()));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Resource attributes a proxy adds to its spans: its node name when it has one. */
function resourceAttributesOf(config: ProxyConfig): Record<string, string> {
  return config.controlPlane ? { 'service.instance.id': config.controlPlane.node } : {};
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Starts a proxy on a config: binds its listeners and admin, or rejects with every reason. */
export async function startProxy(opts: StartProxyOptions): Promise<ProxyRuntime> {
  const runtime = new ProxyRuntime(opts);
  const result = await runtime.apply(opts.config, { version: opts.version ?? '1', source: opts.source ?? 'file' });
  if (!result.ok) {
    await runtime.close();
    throw new ProxyStartError(result.errors);
  }
  return runtime;
}

export class ProxyStartError extends Error {
  constructor(readonly errors: string[]) {
    super(`the proxy could not start:\n  ${errors.join('\n  ')}`);
  }
}
