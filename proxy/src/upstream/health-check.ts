// Active HTTP health checks (issue 3, "Active health checks"), off the request path: each
// cluster with a `healthCheck` block gets a checker that, every `interval`, sends GET `path`
// to each endpoint with a `timeout`. `unhealthyThreshold` failures in a row (a non-2xx answer,
// a connection error, or no answer in time) take the endpoint out of the balancer
// (EndpointState.healthy = false); `healthyThreshold` successes in a row bring it back. When
// too many are out, the core's balancer uses all of them (panic mode) rather than none.
//
// Probes go through one p-limit per manager so a proxy with many endpoints never opens more
// than `maxConcurrentProbes` at once. A round ends before the next is scheduled, so a slow
// endpoint delays its cluster's next round rather than piling probes up.
//
// HealthCheckManager keeps one checker per cluster name and follows config snapshots
// (sync): new clusters start, changed settings apply from the next round with the streaks
// kept, and clusters that are gone or no longer checked stop, their endpoints marked healthy
// again (a stopped checker must not leave endpoints out forever).
import { Agent, request } from 'node:http';
import pLimit, { type LimitFunction } from 'p-limit';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { ClusterState } from './cluster-state.js';
import type { EndpointState } from './endpoint.js';

export type HealthCheckResult = 'success' | 'failure' | 'timeout';

export interface HealthCheckOptions {
  clock?: Clock;
  metrics?: ProxyMetrics;
  /** Probes in flight at once across all clusters of the manager. */
  maxConcurrentProbes?: number;
}

interface Streak {
  successes: number;
  failures: number;
}

/** One HTTP probe; resolves, never rejects. */
function probe(agent: Agent, clock: Clock, ep: EndpointState, path: string, timeoutMs: number): Promise<HealthCheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: HealthCheckResult) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      resolve(r);
    };
    const req = request({ host: ep.host, port: ep.port, path, method: 'GET', agent, headers: { host: ep.address, 'user-agent': 'tsmesh-health-check' } }, (res) => {
      const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
      res.on('error', () => finish('failure'));
      res.on('end', () => finish(ok ? 'success' : 'failure'));
      res.resume();
    });
    const timer: TimerHandle = clock.setTimer(() => {
      finish('timeout');
      req.destroy();
    }, timeoutMs);
    req.on('error', () => finish('failure'));
    req.end();
  });
}

export class ClusterHealthChecker {
  private config: HealthCheckConfig;
  private timer: TimerHandle | undefined;
  private running = false;
  private readonly streaks = new WeakMap<EndpointState, Streak>();
  /** Completed rounds, for tests and debugging. */
  rounds = 0;

  constructor(
    readonly cluster: ClusterState,
    config: HealthCheckConfig,
    private readonly agent: Agent,
    private readonly limit: LimitFunction,
    private readonly clock: Clock,
    private readonly metrics: ProxyMetrics | undefined,
  ) {
    this.config = config;
  }

  get settings(): HealthCheckConfig {
    return this.config;
  }

  /** New settings take effect from the next round; streaks and verdicts stay. */
  reconfigure(config: HealthCheckConfig): void {
    this.config = config;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.round();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private async round(): Promise<void> {
    if (!this.running) return;
    const started = this.clock.now();
    const { path, timeout } = this.config;
    await Promise.all(
      this.cluster.endpoints.map((ep) =>
        this.limit(async () => {
          if (!this.running) return;
          const result = await probe(this.agent, this.clock, ep, path, timeout);
          if (this.running) this.record(ep, result);
        }),
      ),
    );
    this.rounds++;
    if (!this.running) return;
    const wait = Math.max(0, this.config.interval - (this.clock.now() - started));
    this.timer = this.clock.setTimer(() => void this.round(), wait);
  }

  /** Applies one probe result to the endpoint's streak and verdict. */
  record(ep: EndpointState, result: HealthCheckResult): void {
    let s = this.streaks.get(ep);
    if (!s) {
      s = { successes: 0, failures: 0 };
      this.streaks.set(ep, s);
    }
    if (result === 'success') {
      s.successes++;
      s.failures = 0;
      if (!ep.healthy && s.successes >= this.config.healthyThreshold) ep.healthy = true;
    } else {
      s.failures++;
      s.successes = 0;
      if (ep.healthy && s.failures >= this.config.unhealthyThreshold) ep.healthy = false;
    }
    if (this.metrics) {
      this.metrics.healthChecks.labels(this.cluster.name, ep.address, result).inc();
      this.metrics.endpointHealthy.labels(this.cluster.name, ep.address).set(ep.healthy ? 1 : 0);
    }
  }
}

export class HealthCheckManager {
  private readonly checkers = new Map<string, ClusterHealthChecker>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly limit: LimitFunction;
  private readonly clock: Clock;
  private readonly metrics: ProxyMetrics | undefined;

  constructor(options: HealthCheckOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics;
    this.limit = pLimit(options.maxConcurrentProbes ?? 32);
  }

  /** Follows a config snapshot: the clusters it has now (ClusterRegistry.sync's result). */
  sync(clusters: Iterable<ClusterState>): void {
    const seen = new Set<string>();
    for (const cluster of clusters) {
      const cfg = cluster.config.healthCheck;
      if (!cfg) continue;
      seen.add(cluster.name);
      let checker = this.checkers.get(cluster.name);
      if (checker && checker.cluster !== cluster) {
        checker.stop();
        checker = undefined;
      }
      if (checker) {
        checker.reconfigure(cfg);
      } else {
        checker = new ClusterHealthChecker(cluster, cfg, this.agent, this.limit, this.clock, this.metrics);
        this.checkers.set(cluster.name, checker);
        checker.start();
      }
    }
    for (const [name, checker] of this.checkers) {
      if (seen.has(name)) continue;
      checker.stop();
      for (const ep of checker.cluster.endpoints) {
        ep.healthy = true;
        this.metrics?.endpointHealthy.labels(name, ep.address).set(1);
      }
      this.checkers.delete(name);
    }
  }

  checkerOf(cluster: string): ClusterHealthChecker | undefined {
    return this.checkers.get(cluster);
  }

  /** Stops every checker and closes the probe connections. */
  stop(): void {
    for (const c of this.checkers.values()) c.stop();
    this.checkers.clear();
    this.limit.clearQueue();
    this.agent.destroy();
  }
}
