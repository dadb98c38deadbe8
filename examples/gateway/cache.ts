// The query cache: Redis (ioredis) when REDIS_URL is given, else an in-process TTL map.
// A cache is an optimisation, never a dependency: when Redis is down or slow a lookup is a
// "bypass" at once (no offline queue, short command timeout) and the request goes to the
// database uncached.
//
// Refresh ahead: an entry comes due for a refresh at a random point between 60 % and 80 % of
// its TTL; a hit on a due entry is still served from the cache, and the server refreshes it
// in the background (one instance per key and per claim period, through claimRefresh; a
// refresh that fails is tried again when its claim lapses). Without it, the entries
// written together (a cold start fills the whole hot set within a second) expired together,
// and every instance ran the same queries at once: under load, PostgreSQL took 1-2 cores for
// ~7 s a wave and the throughput of the whole system halved (docs/gateway.md).
import { Redis } from 'ioredis';

export type CacheLookup =
  | { readonly status: 'hit'; readonly value: string; readonly refreshDue: boolean }
  | { readonly status: 'miss' }
  | { readonly status: 'bypass' };

export const MISS: CacheLookup = { status: 'miss' };
export const BYPASS: CacheLookup = { status: 'bypass' };

/** Share of the TTL after which an entry is due for a refresh: uniform in [FROM, TO). */
export const REFRESH_FROM = 0.6;
export const REFRESH_TO = 0.8;

/** When an entry written at `now` comes due for a refresh. */
export function refreshAt(now: number, ttlMs: number, random: () => number = Math.random): number {
  return now + Math.round(ttlMs * (REFRESH_FROM + (REFRESH_TO - REFRESH_FROM) * random()));
}

/** What the cache stores: `<refresh-at ms>|<value>`. */
export function encodeEntry(refreshAtMs: number, value: string): string {
  return `${refreshAtMs}|${value}`;
}

const ENTRY = /^(\d+)\|/;

/** A stored entry as a hit; anything else under our prefix is not an entry of ours: a miss. */
export function decodeEntry(raw: string, now: number): CacheLookup {
  const m = ENTRY.exec(raw);
  if (!m) return MISS;
  return { status: 'hit', value: raw.slice(m[0].length), refreshDue: now >= Number(m[1]) };
}

/**
 * How long one instance holds the right to refresh a key: a tenth of the TTL, at most 5 s. A
 * refresh that fails or dies is tried again after it, well within the 20-40 % of the TTL an
 * entry has left once due.
 */
export function refreshClaimMs(ttlMs: number): number {
  return Math.max(1, Math.min(5000, Math.round(ttlMs / 10)));
}

export interface QueryCache {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<CacheLookup>;
  /** Fire and forget: a failed write only costs a later miss. */
  set(key: string, value: string): void;
  /** True for the one caller (across every instance sharing the cache) that should refresh key now. */
  claimRefresh(key: string): Promise<boolean>;
  /** "up", or why not. */
  state(): { readonly state: 'up' | 'down'; readonly detail?: string };
  close(): Promise<void>;
}

export class MemoryCache implements QueryCache {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, { value: string; expires: number; refreshAt: number; claimedUntil: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  async get(key: string): Promise<CacheLookup> {
    const e = this.entries.get(key);
    if (!e) return MISS;
    const now = this.now();
    if (e.expires <= now) {
      this.entries.delete(key);
      return MISS;
    }
    return { status: 'hit', value: e.value, refreshDue: now >= e.refreshAt };
  }

  set(key: string, value: string): void {
    // Map keeps insertion order: deleting first makes this entry the newest, and the
    // first key is then the oldest one to evict.
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    const now = this.now();
    this.entries.set(key, { value, expires: now + this.ttlMs, refreshAt: refreshAt(now, this.ttlMs, this.random), claimedUntil: 0 });
  }

  /** As with Redis, one refresh per claim period: a database that fails is not asked again on every hit. */
  async claimRefresh(key: string): Promise<boolean> {
    const e = this.entries.get(key);
    if (!e) return true;
    const now = this.now();
    if (now < e.claimedUntil) return false;
    e.claimedUntil = now + refreshClaimMs(this.ttlMs);
    return true;
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
      // q2: entries carry their refresh time (encodeEntry); a gateway that predates it reads
      // q: and would answer such an entry as it is.
      keyPrefix: opts.keyPrefix ?? 'tsmesh:gateway:q2:',
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
      const raw = await this.redis.get(key);
      return raw === null ? MISS : decodeEntry(raw, Date.now());
    } catch (err) {
      this.lastError = (err as Error).message;
      return BYPASS;
    }
  }

  set(key: string, value: string): void {
    if (this.redis.status !== 'ready') return;
    this.redis.set(key, encodeEntry(refreshAt(Date.now(), this.ttlMs), value), 'PX', this.ttlMs).catch((err: Error) => {
      this.lastError = err.message;
    });
  }

  async claimRefresh(key: string): Promise<boolean> {
    if (this.redis.status !== 'ready') return false;
    try {
      // NUL cannot occur in a query (the server refuses it), so no query's key is a claim's key.
      return (await this.redis.set(`\u0000refresh:${key}`, '1', 'PX', refreshClaimMs(this.ttlMs), 'NX')) === 'OK';
    } catch (err) {
      this.lastError = (err as Error).message;
      return false;
    }
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
