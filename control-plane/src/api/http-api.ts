// The control plane's HTTP API, for people and the CLI (JSON in, JSON out):
//
//   POST /v1/apply      {document: YAML text or object, comment?, author?}  -> 201 revision | 400 {errors}
//   POST /v1/rollback   {revision, comment?, author?}                       -> 201 revision (a new one)
//   GET  /v1/status                                                          -> proxies and replicas
//   GET  /api/status                                                         -> the same (what `tsmesh stat --server` reads)
//   GET  /v1/revisions?selector=S&limit=N                                    -> history, newest first
//   GET  /v1/revisions/N                                                     -> one revision with its document
//   GET  /v1/diff?from=A[&to=B]                                              -> changes from A to B (or what A changed)
//   GET  /metrics, GET /ready                                                -> no token needed
//
// Every /v1 call needs "Authorization: Bearer <token>": changes obviously, and reads too,
// because documents may carry credentials (redis.url).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { TokenCheck } from '../auth.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { diffDocuments, formatChanges } from '../diff.js';
import { validateDocument } from '../document.js';
import { compileSelector, resolveNode } from '../selector.js';
import type { DiscoveryServer } from '../server/discovery-server.js';
import type { SnapshotCache } from '../server/snapshot-cache.js';
import { readProxyStatus, readReplicas } from '../store/proxy-status.js';
import type { Revision, RevisionStore } from '../store/revisions.js';
import type pg from 'pg';

const MAX_BODY = 4 * 1024 * 1024;

export interface ApiDeps {
  readonly pool: pg.Pool;
  readonly store: RevisionStore;
  readonly cache: SnapshotCache;
  readonly discovery: DiscoveryServer;
  readonly token: TokenCheck;
  readonly metrics: ControlPlaneMetrics;
  readonly log: Logger;
  readonly replica: string;
  /** Takes a revision this replica stored into the cache and pushes it (without waiting for NOTIFY). */
  readonly accept: (rev: Revision) => Promise<void>;
  readonly ready: () => boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? body.error));
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, { error: 'too_large', message: `request body over ${MAX_BODY} bytes` });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    const value: unknown = text.trim() === '' ? {} : JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, { error: 'bad_request', message: `the body must be a JSON object: ${(err as Error).message}` });
  }
}

function revisionNumber(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new HttpError(400, { error: 'bad_request', message: `${what} must be a revision number (got ${JSON.stringify(value)})` });
  return n;
}

function optionalString(value: unknown, what: string, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw new HttpError(400, { error: 'bad_request', message: `${what} must be a string` });
  return value.slice(0, 1000);
}

export function createApiServer(deps: ApiDeps): Server {
  const { store, cache, discovery, token, metrics, log } = deps;

  const revisionAnswer = (rev: Revision, warnings: string[]) => {
    const nodes = discovery.connected().filter((s) => cache.resolve(s.node)?.selector === rev.selector).map((s) => s.node);
    return { revision: rev.revision, version: String(rev.revision), selector: rev.selector, createdAt: rev.createdAt, author: rev.author, comment: rev.comment, rollbackOf: rev.rollbackOf, nodes, warnings };
  };

  /** Connected nodes the selector matches but that another, more specific or older, service keeps. */
  const shadowWarnings = async (selector: string): Promise<string[]> => {
    const compiled = compileSelector(selector);
    const first = (await store.firstRevisionOf(selector)) ?? Number.MAX_SAFE_INTEGER;
    const out: string[] = [];
    for (const s of discovery.connected()) {
      if (!compiled.regex.test(s.node)) continue;
      const current = cache.resolve(s.node);
      if (!current || current.selector === selector) continue;
      const winner = resolveNode(s.node, [current, { compiled, firstRevision: first }]);
      if (winner !== undefined && winner.compiled.selector !== selector) {
        out.push(`node ${s.node} matches ${selector} but stays with ${current.selector} (more specific or older)`);
      }
    }
    return out;
  };

  const store_ = async (input: { selector: string; document: Record<string, unknown>; author: string; comment: string; rollbackOf?: number }) => {
    const rev = await store.create(input);
    metrics.applies.inc({ result: 'stored' });
    log.info({ revision: rev.revision, selector: rev.selector, author: rev.author }, 'revision stored');
    await deps.accept(rev);
    return rev;
  };

  const routes: Array<[string, RegExp, (req: IncomingMessage, url: URL, m: RegExpExecArray) => Promise<[number, unknown]>]> = [
    ['POST', /^\/v1\/apply$/, async (req) => {
      const body = await readJson(req);
      if (body.document === undefined) throw new HttpError(400, { error: 'bad_request', message: 'the body needs "document": the YAML text or the parsed object' });
      const checked = validateDocument(body.document);
      if (!checked.ok) {
        metrics.applies.inc({ result: 'invalid' });
        throw new HttpError(400, { error: 'invalid_document', message: `the document has ${checked.errors.length} problem${checked.errors.length === 1 ? '' : 's'}; nothing was stored`, errors: checked.errors });
      }
      const author = optionalString(body.author ?? req.headers['x-tsmesh-author'], 'author', 'unknown');
      const comment = optionalString(body.comment, 'comment', '');
      const warnings = await shadowWarnings(checked.value.selector);
      const rev = await store_({ selector: checked.value.selector, document: checked.value.document, author, comment });
      return [201, revisionAnswer(rev, warnings)];
    }],
    ['POST', /^\/v1\/rollback$/, async (req) => {
      const body = await readJson(req);
      const n = revisionNumber(body.revision, 'revision');
      const old = await store.get(n);
      if (!old) throw new HttpError(404, { error: 'not_found', message: `no revision ${n}` });
      // Checked again: the schema may have changed since the old revision was stored.
      const checked = validateDocument(old.document);
      if (!checked.ok) throw new HttpError(400, { error: 'invalid_document', message: `revision ${n} is not valid any more; nothing was stored`, errors: checked.errors });
      const author = optionalString(body.author ?? req.headers['x-tsmesh-author'], 'author', 'unknown');
      const comment = optionalString(body.comment, 'comment', `rollback to revision ${n}`);
      const rev = await store_({ selector: old.selector, document: old.document, author, comment, rollbackOf: n });
      return [201, revisionAnswer(rev, [])];
    }],
    ['GET', /^\/(?:v1|api)\/status$/, async () => {
      const [proxies, replicas] = await Promise.all([readProxyStatus(deps.pool), readReplicas(deps.pool)]);
      return [200, { replica: deps.replica, proxies, replicas }];
    }],
    ['GET', /^\/v1\/revisions$/, async (_req, url) => {
      const limitText = url.searchParams.get('limit');
      const limit = limitText === null ? 50 : revisionNumber(limitText, 'limit');
      const selector = url.searchParams.get('selector') ?? undefined;
      return [200, { revisions: await store.list({ selector, limit: Math.min(limit, 1000) }) }];
    }],
    ['GET', /^\/v1\/revisions\/([^/]+)$/, async (_req, _url, m) => {
      const n = revisionNumber(m[1], 'the revision');
      const rev = await store.get(n);
      if (!rev) throw new HttpError(404, { error: 'not_found', message: `no revision ${n}` });
      return [200, rev];
    }],
    ['GET', /^\/v1\/diff$/, async (_req, url) => {
      const a = await store.get(revisionNumber(url.searchParams.get('from'), 'from'));
      if (!a) throw new HttpError(404, { error: 'not_found', message: `no revision ${url.searchParams.get('from')}` });
      let from: Revision | undefined;
      let to: Revision;
      if (url.searchParams.get('to') === null) {
        // One revision: what it changed in its service.
        from = await store.previous(a);
        to = a;
      } else {
        const b = await store.get(revisionNumber(url.searchParams.get('to'), 'to'));
        if (!b) throw new HttpError(404, { error: 'not_found', message: `no revision ${url.searchParams.get('to')}` });
        from = a;
        to = b;
      }
      const changes = diffDocuments(from?.document ?? {}, to.document);
      return [200, { from: from?.revision ?? null, to: to.revision, changes, lines: formatChanges(changes) }];
    }],
  ];

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handle = async (): Promise<void> => {
      if (req.method === 'GET' && url.pathname === '/ready') {
        send(res, deps.ready() ? 200 : 503, { ready: deps.ready(), replica: deps.replica });
        return;
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
        return;
      }
      const matching = routes.filter(([, re]) => re.test(url.pathname));
      if (matching.length === 0) throw new HttpError(404, { error: 'not_found', message: `no such endpoint: ${url.pathname}` });
      if (!token.accepts(req.headers.authorization)) {
        metrics.authFailures.inc({ api: 'http' });
        res.setHeader('www-authenticate', 'Bearer');
        throw new HttpError(401, {
          error: 'unauthorized',
          message: req.headers.authorization === undefined ? 'missing token: send "Authorization: Bearer <token>" (tsmesh --token or TSMESH_TOKEN)' : 'wrong token',
        });
      }
      const route = matching.find(([method]) => method === req.method);
      if (!route) {
        res.setHeader('allow', matching.map(([m]) => m).join(', '));
        throw new HttpError(405, { error: 'method_not_allowed', message: `${req.method} is not allowed on ${url.pathname}` });
      }
      const [status, body] = await route[2](req, url, route[1].exec(url.pathname)!);
      send(res, status, body);
    };
    handle().catch((err: unknown) => {
      if (err instanceof HttpError) {
        send(res, err.status, err.body);
      } else {
        log.error({ err }, 'api request failed');
        send(res, 500, { error: 'internal', message: (err as Error).message });
      }
    });
  });
}
