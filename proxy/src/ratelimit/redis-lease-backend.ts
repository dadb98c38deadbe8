// Where global rate limits are counted: token buckets in Redis, changed only by one atomic
// Lua script that refills a bucket from Redis's own clock (so proxies' clocks do not matter),
// grants up to the tokens a proxy asks for (a lease), and records the proxy in the limit's
// member set, whose size tells every proxy how many share the limit (its fallback share).
//
// One backend (one Redis connection) serves all global limits of a proxy. It never queues
// commands while Redis is away (they fail at once) and marks itself down, so the request path
// never waits for Redis.
import { Redis } from 'ioredis';
import type { ProxyMetrics } from '../telemetry/metrics.js';

const LEASE_SCRIPT = `
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local window = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) * rate / 1000)
  ts = now
end
local granted = math.floor(tokens)
if granted > want then granted = want end
if granted < 0 then granted = 0 end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local members = redis.call('ZCARD', KEYS[2])
redis.call('PEXPIRE', KEYS[2], window * 2)
return {granted, wait, members}
`;

export interface LeaseRequest {
  /** The shared counter's name (rateLimit.globalKey, or the route name). */
  readonly limit: string;
  /** The bucket within it: the key header's value, "" when the limit is not keyed. */
  readonly key: string;
  readonly ratePerSecond: number;
  readonly capacity: number;
  readonly want: number;
}

export interface LeaseAnswer {
  readonly granted: number;
  /** Milliseconds until the bucket has a whole token again (0 when it has one now). */
  readonly waitMs: number;
  /** Proxies that took from this limit within the membership window (this one included). */
  readonly proxies: number;
}

/** A proxy counts as sharing a limit while it leased from it within this window. */
export const MEMBERSHIP_WINDOW_MS = 10_000;
/** After a failed command, Redis is treated as down at least this long. */
const FAILURE_HOLD_MS = 1000;

type RedisWithLease = Redis & {
  tsmeshLease(bucket: string, members: string, rate: string, cap: string, want: string, proxy: string, window: string): Promise<[number, number, number]>;
};

export interface RedisLeaseBackendOptions {
  readonly url: string;
  /** This proxy's name in the member sets (e.g. its node name). */
  readonly proxyId: string;
  readonly metrics?: ProxyMetrics;
  /** Longest a lease call may take before it counts as a failure (default 500 ms). */
  readonly commandTimeoutMs?: number;
  readonly onStateChange?: (up: boolean, why: string) => void;
}

export class RedisLeaseBackend {
  private readonly redis: RedisWithLease;
  private failedUntil = 0;
  private wasUp = false;
  /** A closed backend (e.g. replaced after a redis.url change) no longer reports its state. */
  private closed = false;
  /** Lease calls made: Redis sees this many commands for all the requests decided locally. */
  calls = 0;
  failures = 0;

  constructor(private readonly opts: RedisLeaseBackendOptions) {
    const redis = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      connectTimeout: 1000,
      // Keeps trying forever, never more than a second apart, so recovery is quick.
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    }) as RedisWithLease;
    redis.defineCommand('tsmeshLease', { numberOfKeys: 2, lua: LEASE_SCRIPT });
    redis.on('ready', () => this.observe('connected'));
    redis.on('close', () => this.observe('connection closed'));
    redis.on('end', () => this.observe('connection ended'));
    // ioredis reports connection errors here and reconnects by itself.
    redis.on('error', () => this.observe('connection error'));
    this.redis = redis;
    opts.metrics?.rateLimitBackendUp.set(0);
  }

  /** True while Redis answers: leases are asked for; otherwise limits run on the local share. */
  get up(): boolean {
    return this.redis.status === 'ready' && Date.now() >= this.failedUntil;
  }

  private observe(why: string): void {
    if (this.closed) return;
    const up = this.up;
    if (up === this.wasUp) return;
    this.wasUp = up;
    this.opts.metrics?.rateLimitBackendUp.set(up ? 1 : 0);
    this.opts.onStateChange?.(up, why);
  }

  async lease(req: LeaseRequest): Promise<LeaseAnswer> {
    this.calls++;
    const base = `tsmesh:rl:${req.limit}`;
    // Key header values are client input: long ones are cut so a key stays a sane size.
    const key = req.key.length > 200 ? req.key.slice(0, 200) : req.key;
    try {
      const [granted, waitMs, proxies] = await this.redis.tsmeshLease(
        `${base}:b:${key}`,
        `${base}:members`,
        String(req.ratePerSecond),
        String(req.capacity),
        String(req.want),
        this.opts.proxyId,
        String(MEMBERSHIP_WINDOW_MS),
      );
      this.observe('lease answered');
      return { granted: Number(granted), waitMs: Number(waitMs), proxies: Math.max(1, Number(proxies)) };
    } catch (err) {
      this.failures++;
      this.failedUntil = Date.now() + FAILURE_HOLD_MS;
      this.observe(`lease failed: ${(err as Error).message}`);
      // Comes back by itself once the hold is over and the connection is ready.
      setTimeout(() => this.observe('retrying'), FAILURE_HOLD_MS + 1).unref();
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect();
  }
}
