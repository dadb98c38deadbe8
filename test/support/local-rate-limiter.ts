// A plain local token bucket per key: the "local" RateLimiterFactory the global limiter
// falls back to in tests (the proxy passes its own local factory).
import type { RateLimiter, RateLimiterFactory } from '../../proxy/src/policy/rate-limiter.js';
import type { RateLimitConfig } from '../../proxy/src/config/schema.js';
import { systemClock, type Clock } from '../../proxy/src/clock.js';

class LocalBucket implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;

  constructor(
    private readonly config: RateLimitConfig,
    private readonly clock: Clock,
  ) {
    this.capacity = config.burst ?? Math.max(1, Math.ceil(config.requestsPerSecond));
  }

  take(key: string) {
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) * this.config.requestsPerSecond) / 1000);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens--;
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterMs: 0 };
    }
    return { allowed: false, remaining: 0, retryAfterMs: Math.ceil(((1 - b.tokens) * 1000) / this.config.requestsPerSecond) };
  }

  close(): void {}
}

export function localRateLimiters(clock: Clock = systemClock): RateLimiterFactory & { created: RateLimitConfig[] } {
  const created: RateLimitConfig[] = [];
  const f = (_route: string, config: RateLimitConfig) => {
    created.push(config);
    return new LocalBucket(config, clock);
  };
  return Object.assign(f, { created });
}
