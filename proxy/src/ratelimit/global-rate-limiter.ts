// A rate limit shared by all proxies (`rateLimit.global: true`): the tokens live in Redis
// (redis-lease-backend.ts) and each proxy leases them in small batches, so a request only
// takes from a local count and Redis sees a small fraction of the traffic.
//
// Per bucket (route x key header value) a proxy keeps:
// - tokens: leased and not spent. It asks for the next batch before it runs out (below half
//   a batch), so the request path rarely finds it empty.
// - credit: a first request after a quiet spell may spend a token before the lease arrives
//   (down to -credit); the debt is paid from the next lease, so the total stays exact and is
//   exceeded by at most `credit` per proxy for a moment. No credit while Redis says empty.
// - expiry: unspent tokens are dropped a second after their lease, so an idle proxy cannot
//   hoard what other proxies need.
// Batch size follows the share and the lease round trip: the share's tokens for 100 ms, or
// for two round trips when leases take longer than 50 ms (at most 500 ms). A proxy has one
// lease in flight per bucket, so it can take at most a batch per round trip: with batches of
// a fixed 100 ms, round trips slower than that (a slow Redis, or a proxy's own busy event
// loop, which delays the answer just the same) capped the proxies below the limit, and the
// tokens they could not take piled up in Redis until the bucket was full and they were lost.
// Two round trips' worth keeps each proxy able to take twice its share, and half a batch
// (the refill point) lasts the round trip. Credit stays sized on the 100 ms batch: a slow
// Redis does not let a proxy run further ahead of its leases.
//
// When Redis is unreachable, the limit runs on a local bucket at this proxy's share of it
// (rate / proxies seen sharing it while Redis was up, the whole rate if it never was), each
// decision counted in `rateLimitFallback`. No request fails or waits because Redis is down;
// shared counting resumes by itself when Redis answers again.
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import type { RateLimitConfig } from '../config/schema.js';
import type { RateLimiter, RateLimiterFactory, TakeResult } from '../policy/rate-limiter.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { RedisLeaseBackend } from './redis-lease-backend.js';

const LEASE_INTERVAL_MS = 100;
/** Batches cover at most this long of the share, however slow the round trips. */
const MAX_LEASE_HORIZON_MS = 500;
/** Weight of the newest round trip in the smoothed one. */
const RTT_WEIGHT = 0.3;
/** After a short grant, a bucket is not asked again sooner than this. */
const MIN_REFETCH_MS = LEASE_INTERVAL_MS / 2;
const LEASE_TTL_MS = 1000;
/** Buckets (key values) idle this long are forgotten. */
const IDLE_BUCKET_MS = 60_000;

interface Bucket {
  tokens: number;
  expiresAt: number;
  /** Redis said empty: no credit and no new lease before this time. */
  exhaustedUntil: number;
  inflight: boolean;
  lastUsed: number;
}

export interface GlobalRateLimiterOptions {
  readonly routeName: string;
  readonly config: RateLimitConfig;
  readonly backend: RedisLeaseBackend;
  /** Builds the local limiter used while Redis is down, for a share of the limit. */
  readonly local: RateLimiterFactory;
  readonly clock?: Clock;
  readonly metrics?: ProxyMetrics;
}

/** The bucket size of a limit: its burst, or one second of its rate. */
export function capacityOf(config: RateLimitConfig): number {
  return config.burst ?? Math.max(1, Math.ceil(config.requestsPerSecond));
}

export class GlobalRateLimiter implements RateLimiter {
  private readonly clock: Clock;
  private readonly buckets = new Map<string, Bucket>();
  private readonly limit: string;
  private readonly rate: number;
  private readonly capacity: number;
  private proxies = 1;
  /** Smoothed time from asking Redis for a lease to having its tokens. */
  private rttMs = 0;
  private fallback: { share: number; limiter: RateLimiter } | undefined;
  private lastSweep = 0;
  private closed = false;
  readonly stats = { admitted: 0, rejected: 0, fallback: 0, leases: 0 };

  /** The smoothed lease round trip, in ms (0 before the first answer). */
  get leaseRoundTripMs(): number {
    return this.rttMs;
  }

  constructor(private readonly opts: GlobalRateLimiterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.limit = opts.config.globalKey ?? opts.routeName;
    this.rate = opts.config.requestsPerSecond;
    this.capacity = capacityOf(opts.config);
  }

  /** Tokens to lease at a time: the share's for the lease horizon (see the top of this file). */
  get batch(): number {
    return this.batchFor(Math.min(MAX_LEASE_HORIZON_MS, Math.max(LEASE_INTERVAL_MS, 2 * this.rttMs)));
  }

  private batchFor(horizonMs: number): number {
    return Math.max(1, Math.min(this.capacity, Math.ceil((this.rate * horizonMs) / 1000 / this.proxies)));
  }

  take(key: string): TakeResult {
    const now = this.clock.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: 0, expiresAt: 0, exhaustedUntil: 0, inflight: false, lastUsed: now };
      this.buckets.set(key, b);
      this.sweep(now);
    }
    b.lastUsed = now;
    if (b.tokens > 0 && now >= b.expiresAt) b.tokens = 0;

    if (b.tokens >= 1) return this.admit(key, b, now);
    if (!this.opts.backend.up) return this.takeLocally(key);
    const credit = Math.max(1, Math.floor(this.batchFor(LEASE_INTERVAL_MS) / 2));
    if (now >= b.exhaustedUntil && b.tokens > -credit) return this.admit(key, b, now);
    this.refill(key, b, now);
    this.stats.rejected++;
    const retryAfterMs = Math.max(1, Math.ceil(Math.max(b.exhaustedUntil - now, 1000 / this.rate)));
    return { allowed: false, remaining: 0, retryAfterMs };
  }

  private admit(key: string, b: Bucket, now: number): TakeResult {
    b.tokens--;
    this.stats.admitted++;
    this.refill(key, b, now);
    return { allowed: true, remaining: Math.max(0, Math.floor(b.tokens)), retryAfterMs: 0 };
  }

  private takeLocally(key: string): TakeResult {
    const share = Math.max(1, this.proxies);
    if (!this.fallback || this.fallback.share !== share) {
      this.fallback?.limiter.close();
      const cfg: RateLimitConfig = {
        ...this.opts.config,
        global: false,
        requestsPerSecond: this.rate / share,
        burst: Math.max(1, Math.ceil(this.capacity / share)),
      };
      this.fallback = { share, limiter: this.opts.local(this.opts.routeName, cfg) };
    }
    this.stats.fallback++;
    this.opts.metrics?.rateLimitFallback.inc({ route: this.opts.routeName });
    const r = this.fallback.limiter.take(key);
    if (r.allowed) this.stats.admitted++;
    else this.stats.rejected++;
    return r;
  }

  /** Asks Redis for the next batch when the local count runs low (never on the request's time). */
  private refill(key: string, b: Bucket, now: number): void {
    const batch = this.batch;
    if (b.inflight || this.closed || b.tokens > batch / 2 || now < b.exhaustedUntil || !this.opts.backend.up) return;
    const want = batch + Math.max(0, -Math.floor(b.tokens));
    b.inflight = true;
    this.stats.leases++;
    this.opts.backend
      .lease({ limit: this.limit, key, ratePerSecond: this.rate, capacity: this.capacity, want })
      .then(
        (answer) => {
          const at = this.clock.now();
          const rtt = Math.max(0, at - now);
          this.rttMs = this.rttMs === 0 ? rtt : this.rttMs + RTT_WEIGHT * (rtt - this.rttMs);
          b.tokens += answer.granted;
          if (answer.granted > 0) b.expiresAt = at + LEASE_TTL_MS;
          if (answer.granted < want) b.exhaustedUntil = at + Math.max(answer.waitMs, MIN_REFETCH_MS);
          this.proxies = answer.proxies;
        },
        () => {
          // Redis is down (the backend knows): the local share decides until it is back.
        },
      )
      .finally(() => {
        b.inflight = false;
      });
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < IDLE_BUCKET_MS) return;
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (now - b.lastUsed > IDLE_BUCKET_MS && !b.inflight) this.buckets.delete(k);
  }

  close(): void {
    this.closed = true;
    this.fallback?.limiter.close();
  }
}

export interface GlobalRateLimitersOptions {
  /** The local limiter factory: for non-global limits, and for the fallback share. */
  readonly local: RateLimiterFactory;
  /** Redis for global limits (config `redis.url`, or REDIS_URL); without it global limits run locally. */
  readonly redisUrl?: string;
  /** This proxy's name among those sharing limits (its node name). */
  readonly proxyId: string;
  readonly metrics?: ProxyMetrics;
  readonly clock?: Clock;
  readonly onBackendState?: (up: boolean, why: string) => void;
}

export interface GlobalAwareFactory extends RateLimiterFactory {
  /** The Redis backend, when there is one. */
  readonly backend: RedisLeaseBackend | undefined;
  close(): Promise<void>;
}

/** The Redis URL for a proxy's global limits: its config's, else REDIS_URL. */
export function redisUrlOf(config: { redis?: { url: string } }, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return config.redis?.url ?? (env.REDIS_URL || undefined);
}

/**
 * A RateLimiterFactory that gives `global: true` limits a GlobalRateLimiter on one shared Redis
 * backend and every other limit the local factory's limiter. Without a Redis URL, global
 * limits are local limiters at the full rate (as documented for configs without `redis`).
 */
export async function globalRateLimiters(opts: GlobalRateLimitersOptions): Promise<GlobalAwareFactory> {
  let backend: RedisLeaseBackend | undefined;
  if (opts.redisUrl) {
    const { RedisLeaseBackend } = await import('./redis-lease-backend.js');
    backend = new RedisLeaseBackend({ url: opts.redisUrl, proxyId: opts.proxyId, metrics: opts.metrics, onStateChange: opts.onBackendState });
  }
  const factory = ((routeName: string, config: RateLimitConfig): RateLimiter => {
    if (!config.global || !backend) return opts.local(routeName, config);
    return new GlobalRateLimiter({ routeName, config, backend, local: opts.local, clock: opts.clock, metrics: opts.metrics });
  }) as GlobalAwareFactory;
  Object.defineProperty(factory, 'backend', { value: backend });
  Object.defineProperty(factory, 'close', { value: async () => backend?.close() });
  return factory;
}
