// The running proxy's rate limiters, per applied config: `global: true` limits count in the
// Redis of the config's `redis.url` (or REDIS_URL), every other limit in a local token bucket.
//
// The factory (and its one Redis connection) is kept while the Redis URL stays the same, so
// limiters and their leases survive config swaps. When the URL changes, a new factory is made;
// routes then build new limiters from it (policy/rate-limit.ts compares factories). The old
// factory's connection is closed only after a grace period: requests that started on the
// swapped-out snapshot may still ask its limiters, and a closed backend answers them from
// the local share anyway, so none fails.
import type { ProxyConfig } from '../config/schema.js';
import { localRateLimiters } from '../policy/token-bucket.js';
import type { RateLimiterFactory, RateLimiterProvider } from '../policy/rate-limiter.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import { globalRateLimiters, redisUrlOf, type GlobalAwareFactory } from './global-rate-limiter.js';

export interface ProxyRateLimitersOptions {
  /** This proxy's name among those sharing global limits (its node name). */
  readonly proxyId: string;
  readonly metrics?: ProxyMetrics;
  /** Local limiters (default: token buckets on the system clock). */
  readonly local?: RateLimiterFactory;
  /** Where REDIS_URL is read when a config has no `redis.url` (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long a replaced Redis connection stays open for requests still on the old snapshot (default 10 s). */
  readonly graceMs?: number;
  readonly onBackendState?: (up: boolean, why: string, redisUrl: string) => void;
}

export class ProxyRateLimiters implements RateLimiterProvider {
  private current: { url: string | undefined; factory: GlobalAwareFactory } | undefined;
  private readonly retiring = new Map<GlobalAwareFactory, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly opts: ProxyRateLimitersOptions) {}

  /** The Redis URL global limits use now (undefined: they run locally). */
  get redisUrl(): string | undefined {
    return this.current?.url;
  }

  /** The current factory (undefined before the first config). */
  get factory(): GlobalAwareFactory | undefined {
    return this.current?.factory;
  }

  async forConfig(config: ProxyConfig): Promise<RateLimiterFactory> {
    if (this.closed) throw new Error('the rate limiters are closed');
    const url = redisUrlOf(config, this.opts.env);
    if (this.current && this.current.url === url) return this.current.factory;
    const factory = await globalRateLimiters({
      local: this.opts.local ?? localRateLimiters,
      redisUrl: url,
      proxyId: this.opts.proxyId,
      metrics: this.opts.metrics,
      onBackendState: url === undefined ? undefined : (up, why) => this.opts.onBackendState?.(up, why, url),
    });
    const old = this.current?.factory;
    this.current = { url, factory };
    if (old) this.retire(old);
    // Without Redis nothing is reachable or not; the gauge must not keep the old backend's 1.
    if (url === undefined) this.opts.metrics?.rateLimitBackendUp.set(0);
    return factory;
  }

  private retire(factory: GlobalAwareFactory): void {
    const timer = setTimeout(() => {
      this.retiring.delete(factory);
      void factory.close();
    }, this.opts.graceMs ?? 10_000);
    timer.unref();
    this.retiring.set(factory, timer);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.retiring.values()) clearTimeout(timer);
    const all = [...this.retiring.keys(), ...(this.current ? [this.current.factory] : [])];
    this.retiring.clear();
    this.current = undefined;
    await Promise.all(all.map((f) => f.close()));
  }
}
