// The local RateLimiter: a token bucket per key, refilled continuously at requestsPerSecond up
// to `burst` tokens (Envoy's local rate limit and most API gateways do the same). Refill is
// computed lazily on take(): no timers, O(1) per request.
//
// Keyed limits keep at most `maxKeys` buckets; past it the least recently used bucket goes, so
// a client sending a new header value with every request cannot grow memory. Losing a bucket
// only forgets a debt: the key starts again from a full bucket.
import { systemClock, type Clock } from '../clock.js';
import type { RateLimitConfig } from '../config/schema.js';
import type { RateLimiter, RateLimiterFactory, TakeResult } from './rate-limiter.js';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** The answer object is reused: it is valid until the next take() on the same limiter. */
interface MutableTakeResult {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
}

export class TokenBucketLimiter implements RateLimiter {
  readonly capacity: number;
  private readonly perMs: number;
  private readonly maxKeys: number;
  private readonly keyed: boolean;
  /** By key, least recently used first (Map keeps insertion order; a use re-inserts). */
  private readonly buckets = new Map<string, Bucket>();
  private readonly single: Bucket;
  private readonly result: MutableTakeResult = { allowed: false, remaining: 0, retryAfterMs: 0 };

  constructor(
    config: RateLimitConfig,
    private readonly clock: Clock = systemClock,
  ) {
    this.perMs = config.requestsPerSecond / 1000;
    this.capacity = burstOf(config);
    this.maxKeys = config.maxKeys;
    this.keyed = config.key !== undefined;
    this.single = { tokens: this.capacity, updatedAt: clock.now() };
  }

  /** Buckets held now (for tests and debugging). */
  get size(): number {
    return this.keyed ? this.buckets.size : 1;
  }

  take(key: string): TakeResult {
    const now = this.clock.now();
    const b = this.keyed && key !== '' ? this.bucketOf(key, now) : this.single;
    let tokens = b.tokens + (now - b.updatedAt) * this.perMs;
    if (tokens > this.capacity) tokens = this.capacity;
    b.updatedAt = now;
    const r = this.result;
    if (tokens >= 1) {
      b.tokens = tokens - 1;
      r.allowed = true;
      r.remaining = Math.floor(b.tokens);
      r.retryAfterMs = 0;
    } else {
      b.tokens = tokens;
      r.allowed = false;
      r.remaining = 0;
      r.retryAfterMs = (1 - tokens) / this.perMs;
    }
    return r;
  }

  private bucketOf(key: string, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
      this.buckets.set(key, b);
      return b;
    }
    if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    b = { tokens: this.capacity, updatedAt: now };
    this.buckets.set(key, b);
    return b;
  }

  close(): void {
    this.buckets.clear();
  }
}

/** The bucket size: `burst`, by default one second's worth of requests (at least one). */
export function burstOf(config: RateLimitConfig): number {
  return config.burst ?? Math.max(1, Math.ceil(config.requestsPerSecond));
}

/** A factory of local token buckets on the given clock. */
export function localRateLimiterFactory(clock: Clock = systemClock): RateLimiterFactory {
  return (_routeName, config) => new TokenBucketLimiter(config, clock);
}

/** The default: local buckets on the system clock (global limits then count per proxy). */
export const localRateLimiters: RateLimiterFactory = localRateLimiterFactory();
