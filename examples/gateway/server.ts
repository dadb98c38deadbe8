// The gateway API: GET /health and POST /query, the two endpoints of the original system.
// node:http is right here: this is the application a proxy fronts, not the proxy.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../control-plane/src/store/embedded-postgres.js';
import { BYPASS, MemoryCache, RedisCache, type CacheLookup, type QueryCache } from './cache.js';
import { Database } from './database.js';
import { MAX_BODY_BYTES, readBody, rejectTooLarge, sendError, sendJson } from './http.js';

export type GatewayLogLevel = 'info' | 'warn' | 'error';
export type GatewayLog = (level: GatewayLogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface GatewayOptions {
  /** Host to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port to bind; default 0 (any free port). */
  readonly port?: number;
  /** postgres:// URL; without it an embedded PostgreSQL is started under dataDir. */
  readonly databaseUrl?: string;
  /** redis:// URL; without it the cache is in-process. */
  readonly redisUrl?: string;
  /** Where the embedded PostgreSQL keeps its data; default .tsmesh/gateway. */
  readonly dataDir?: string;
  readonly cacheTtlMs?: number;
  readonly poolSize?: number;
  readonly connectTimeoutMs?: number;
  readonly queryTimeoutMs?: number;
  readonly seedDocuments?: number;
  /** Rows per answer. */
  readonly resultLimit?: number;
  /** How long stop() waits for in-flight requests before closing their connections. */
  readonly drainTimeoutMs?: number;
  /** Must stay above the idle timeout of any proxy pool in front (tsmesh, nginx, ALB). */
  readonly keepAliveTimeoutMs?: number;
  /** Reported by /health; default host:pid. */
  readonly name?: string;
  readonly log?: GatewayLog;
}

export interface Gateway {
  readonly host: string;
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  readonly cacheKind: 'redis' | 'memory';
  readonly embeddedDatabase: boolean;
  stop(): Promise<void>;
}

export const MAX_QUERY_CHARS = 1000;
const JSON_TYPE = /^application\/json\s*(;|$)/i;
const SPACES = /\s+/g;

interface QueryAnswer {
  readonly cache: CacheLookup['status'];
  /** `"count":N,"results":[...]`, shared by fresh and cached answers. */
  readonly fragment: string;
}

class DatabaseUnavailable extends Error {}

/** Parses and checks a /query body; a string is the 400 message. */
export function parseQueryBody(body: Buffer): { query: string } | string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return `invalid JSON: ${(err as Error).message}`;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'body must be a JSON object like {"query":"text"}';
  const q = (doc as { query?: unknown }).query;
  if (q === undefined) return 'missing field "query"';
  if (typeof q !== 'string') return `field "query" must be a string, got ${q === null ? 'null' : Array.isArray(q) ? 'array' : typeof q}`;
  if (q.trim() === '') return 'field "query" must not be empty';
  if (q.length > MAX_QUERY_CHARS) return `field "query" is longer than ${MAX_QUERY_CHARS} characters`;
  // PostgreSQL text cannot hold NUL: refuse it here rather than answer 503 for bad input.
  if (q.includes('\u0000')) return 'field "query" must not contain NUL characters';
  return { query: q };
}

export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const log: GatewayLog = opts.log ?? (() => {});
  const resultLimit = opts.resultLimit ?? 10;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
  const cacheTtlMs = opts.cacheTtlMs ?? 300_000;

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = opts.databaseUrl;
  if (!databaseUrl) {
    const dir = resolve(opts.dataDir ?? '.tsmesh/gateway');
    log('info', 'starting embedded PostgreSQL', { dataDir: dir });
    embedded = await startEmbeddedPostgres(dir);
    databaseUrl = embedded.url;
  }

  let closing = false;
  const db = new Database({
    url: databaseUrl,
    poolSize: opts.poolSize,
    connectTimeoutMs: opts.connectTimeoutMs,
    queryTimeoutMs: opts.queryTimeoutMs,
    seedDocuments: opts.seedDocuments,
    onError: (err) => {
      if (!closing) log('warn', 'database connection error', { err: err.message });
    },
  });
  let cache: QueryCache | undefined;
  const server: Server = createServer({ keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000 });
  try {
    const migration = await db.migrate();
    if (migration.applied.length > 0) log('info', 'database migrated', { applied: migration.applied, seeded: migration.seeded });

    if (opts.redisUrl) {
      const redis = new RedisCache({ url: opts.redisUrl, ttlMs: cacheTtlMs, onError: (err) => log('warn', 'redis unavailable; serving uncached', { err: err.message }) });
      cache = redis;
      if (!(await redis.ready(2000))) log('warn', 'redis not ready yet; serving uncached until it is');
    } else {
      cache = new MemoryCache(cacheTtlMs);
    }
  } catch (err) {
    await cache?.close();
    await db.close().catch(() => {});
    await embedded?.stop().catch(() => {});
    throw err;
  }
  const queryCache = cache;
  const name = opts.name ?? `${hostname()}:${process.pid}`;

  // Identical concurrent database queries (misses, bypasses, refreshes) share one; each caller
  // reports its own cache status.
  const inflight = new Map<string, Promise<string>>();

  /** The answer's `"count":N,"results":[...]` from the database, written to the cache. */
  function query(key: string): Promise<string> {
    const pending = inflight.get(key);
    if (pending) return pending;
    const p = (async (): Promise<string> => {
      try {
        const r = await db.search(key, resultLimit);
        const fragment = `"count":${r.count},"results":${r.rowsJson}`;
        // A no-op while Redis is down: that is what made this request a bypass.
        queryCache.set(key, fragment);
        return fragment;
      } catch (err) {
        throw new DatabaseUnavailable((err as Error).message);
      } finally {
        inflight.delete(key);
      }
    })();
    inflight.set(key, p);
    return p;
  }

  // One warning per run of failed refreshes, not one per key.
  let refreshFailing = false;

  /**
   * Refresh ahead of expiry (cache.ts): the request that found the entry due does not wait for
   * it. A failed refresh leaves the entry served until it expires; a hit after the claim lapses
   * tries again.
   */
  function refresh(key: string): void {
    if (closing || inflight.has(key)) return;
    queryCache
      .claimRefresh(key)
      .then((mine) => (mine && !closing ? query(key) : undefined))
      .then(
        (fragment) => {
          if (fragment !== undefined) refreshFailing = false;
        },
        (err: Error) => {
          if (!refreshFailing) log('warn', 'cache refresh failed; due entries are served until they expire', { err: err.message });
          refreshFailing = true;
        },
      );
  }

  async function answer(text: string): Promise<QueryAnswer> {
    const key = text.trim().replace(SPACES, ' ').toLowerCase();
    const cached = await queryCache.get(key);
    if (cached.status === 'hit') {
      if (cached.refreshDue) refresh(key);
      return { cache: 'hit', fragment: cached.value };
    }
    return { cache: cached.status, fragment: await query(key) };
  }

  async function handleQuery(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = req.headers['content-type'];
    if (type === undefined || !JSON_TYPE.test(type)) {
      sendError(res, 415, 'Content-Type must be application/json');
      return;
    }
    const body = await readBody(req, MAX_BODY_BYTES);
    if (!body.ok) {
      if (body.tooLarge) rejectTooLarge(req, res, MAX_BODY_BYTES);
      return; // otherwise the client went away mid-body: nobody to answer
    }
    const parsed = parseQueryBody(body.body);
    if (typeof parsed === 'string') {
      sendError(res, 400, parsed);
      return;
    }
    let a: QueryAnswer;
    try {
      a = await answer(parsed.query);
    } catch (err) {
      if (!(err instanceof DatabaseUnavailable)) throw err;
      sendJson(res, 503, JSON.stringify({ error: 'database unavailable', detail: err.message, status: 503 }), { 'Retry-After': '1' });
      return;
    }
    const cacheHeader = a.cache === 'hit' ? 'HIT' : a.cache === 'miss' ? 'MISS' : 'BYPASS';
    sendJson(res, 200, `{"query":${JSON.stringify(parsed.query)},"cached":${a.cache === 'hit'},${a.fragment}}`, { 'X-Cache': cacheHeader });
  }

  async function handleHealth(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const c = queryCache.state();
    const cacheState = { kind: queryCache.kind, state: c.state, ...(c.detail ? { detail: c.detail } : {}) };
    try {
      const latencyMs = await db.ping();
      const body = JSON.stringify({ status: 'ok', instance: name, database: { state: 'up', latencyMs: Math.round(latencyMs * 100) / 100 }, cache: cacheState });
      sendJson(res, 200, body); // node:http sends no body for HEAD
    } catch (err) {
      const reason = `database unreachable: ${(err as Error).message}`;
      const body = JSON.stringify({ status: 'unavailable', reason, instance: name, database: { state: 'down', error: (err as Error).message }, cache: cacheState });
      sendJson(res, 503, body, { 'Retry-After': '1' });
    }
  }

  // Node's closeIdleConnections() skips connections that never sent a request: track them
  // so that stop() closes every connection not serving one.
  const sockets = new Set<Socket>();
  const busy = new Map<Socket, ServerResponse>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    busy.set(socket, res);
    res.once('finish', () => {
      busy.delete(socket);
      if (closing) socket.end();
    });
    // Keep-alive connections finish their current request and close while draining.
    if (closing) res.setHeader('Connection', 'close');
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let work: Promise<void> | undefined;
    if (path === '/query') {
      if (req.method === 'POST') work = handleQuery(req, res);
      else sendError(res, 405, `method ${req.method} not allowed on /query`, { Allow: 'POST' });
    } else if (path === '/health') {
      if (req.method === 'GET' || req.method === 'HEAD') work = handleHealth(req, res);
      else sendError(res, 405, `method ${req.method} not allowed on /health`, { Allow: 'GET, HEAD' });
    } else {
      sendError(res, 404, `no such endpoint: ${path}; try GET /health or POST /query`);
    }
    work?.catch((err: Error) => {
      log('error', 'request failed', { path, err: err.stack ?? err.message });
      if (!res.headersSent) sendError(res, 500, 'internal error');
      else res.destroy();
    });
  });
  server.headersTimeout = 66_000;
  server.requestTimeout = 120_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request'];
    const body = JSON.stringify({ error: `bad request: ${err.code ?? err.message}`, status });
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });

  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        server.off('error', fail);
        ok();
      });
    });
  } catch (err) {
    await queryCache.close();
    await db.close().catch(() => {});
    await embedded?.stop().catch(() => {});
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      closing = true;
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      for (const socket of sockets) {
        const res = busy.get(socket);
        if (!res) socket.destroy();
        else if (!res.headersSent) res.setHeader('Connection', 'close');
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((ok) => (timer = setTimeout(ok, drainTimeoutMs)))]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      await queryCache.close();
      await db.close().catch(() => {});
      await embedded?.stop().catch((err: Error) => log('warn', 'embedded PostgreSQL did not stop cleanly', { err: err.message }));
    })());

  return { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}`, cacheKind: queryCache.kind, embeddedDatabase: embedded !== undefined, stop };
}
