// The query cache: Redis (ioredis) when REDIS_URL is given, else an in-process TTL map.
// A cache is an optimisation, never a dependency: when Redis is down or slow a lookup is a
// "bypass" at once (no offline queue, short command timeout) and the request goes to the
// database uncached.
import { Redis } from 'ioredis';

export type CacheLookup = { readonly status: 'hit'; readonly value: string } | { readonly status: 'miss' } | { readonly status: 'bypass' };

export const MISS: CacheLookup = { status: 'miss' };
export const BYPASS: CacheLookup = { status: 'bypass' };

export interface QueryCache {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<CacheLookup>;
  /** Fire and forget: a failed write only costs a later miss. */
  set(key: string, value: string): void;
  /** "up", or why not. */
  state(): { readonly state: 'up' | 'down'; readonly detail?: string };
  close(): Promise<void>;
}

export class MemoryCache implements QueryCache {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, { value: string; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  async get(key: string): Promise<CacheLookup> {
    const e = this.entries.get(key);
    if (!e) return MISS;
    if (e.expires <= Date.now()) {
      this.entries.delete(key);
      return MISS;
    }
    return { status: 'hit', value: e.value };
  }

  set(key: string, value: string): void {
    // Map keeps insertion order: deleting first makes this entry the newest, and the
    // first key is then the oldest one to evict.
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
  }

  state() {
    return { state: 'up' as const };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

export interface RedisCacheOptions {
  readonly url: string;
  readonly ttlMs: number;
  readonly commandTimeoutMs?: number;
  readonly keyPrefix?: string;
  readonly onError?: (err: Error) => void;
}

export class RedisCache implements QueryCache {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly ttlMs: number;
  private lastError: string | undefined;

  constructor(opts: RedisCacheOptions) {
    this.ttlMs = opts.ttlMs;
    this.redis = new Redis(opts.url, {
      keyPrefix: opts.keyPrefix ?? 'tsmesh:gateway:q:',
      // Commands while disconnected fail at once instead of queueing without bound.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs ?? 200,
      connectTimeout: 1000,
      // Reconnect forever, at most once a second: Redis coming back means caching again.
      retryStrategy: (times) => Math.min(times * 100, 1000),
      // Concurrent requests share one write per event-loop turn.
      enableAutoPipelining: true,
    });
    let reported = false;
    this.redis.on('error', (err: Error) => {
      this.lastError = err.message;
      // One line per outage, not one per reconnect attempt.
      if (!reported) opts.onError?.(err);
      reported = true;
    });
    this.redis.on('ready', () => {
      this.lastError = undefined;
      reported = false;
    });
  }

  /** Resolves when connected, or after timeoutMs either way: the gateway serves uncached meanwhile. */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.once('ready', onReady);
    });
  }

  async get(key: string): Promise<CacheLookup> {
    if (this.redis.status !== 'ready') return BYPASS;
    try {
      const value = await this.redis.get(key);
      return value === null ? MISS : { status: 'hit', value };
    } catch (err) {
      this.lastError = (err as Error).message;
      return BYPASS;
    }
  }

  set(key: string, value: string): void {
    if (this.redis.status !== 'ready') return;
    this.redis.set(key, value, 'PX', this.ttlMs).catch((err: Error) => {
      this.lastError = err.message;
    });
  }

  state() {
    if (this.redis.status === 'ready') return { state: 'up' as const };
    return { state: 'down' as const, detail: this.lastError ?? this.redis.status };
  }

  async close(): Promise<void> {
    try {
      if (this.redis.status === 'ready') await this.redis.quit();
      else this.redis.disconnect();
    } catch {
      this.redis.disconnect();
    }
  }
}
