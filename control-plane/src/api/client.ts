// A client of the control plane's HTTP API, used by the CLI and the tests. Errors carry the
// API's own message (and, for a refused document, every problem).
export interface ApiClientOptions {
  /** Base URL, e.g. http://127.0.0.1:15011 (a bare host:port is taken as http). */
  readonly server: string;
  readonly token?: string;
  readonly author?: string;
  readonly timeoutMs?: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
  }
}

export interface RevisionAnswer {
  revision: number;
  version: string;
  selector: string;
  createdAt: string;
  author: string;
  comment: string;
  rollbackOf: number | null;
  nodes: string[];
  warnings: string[];
}

export interface RevisionSummary {
  revision: number;
  createdAt: string;
  author: string;
  comment: string;
  selector: string;
  rollbackOf: number | null;
}

export interface ProxyStatus {
  replica: string;
  stream: number;
  node: string;
  selector: string | null;
  version: string;
  state: string;
  lastError: string | null;
  nackedVersion: string | null;
  connectedSince: string;
  /** The proxy's admin listener host:port (from its node metadata), or null if it sent none. */
  adminAddress: string | null;
  updatedAt: string;
}

export interface StatusAnswer {
  replica: string;
  proxies: ProxyStatus[];
  replicas: Array<{ replica: string; grpcAddress: string; httpAddress: string; startedAt: string; lastSeen: string; alive: boolean }>;
}

export interface DiffAnswer {
  from: number | null;
  to: number;
  changes: Array<{ op: string; path: string; from?: unknown; to?: unknown }>;
  lines: string[];
}

export class ApiClient {
  private readonly base: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = (/^https?:\/\//.test(opts.server) ? opts.server : `http://${opts.server}`).replace(/\/+$/, '');
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (this.opts.author) headers['x-tsmesh-author'] = this.opts.author;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(0, `cannot reach the control plane at ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const p = (parsed ?? {}) as { message?: string; error?: string; errors?: string[] };
      throw new ApiError(res.status, p.message ?? p.error ?? `HTTP ${res.status}: ${text.slice(0, 200)}`, Array.isArray(p.errors) ? p.errors : []);
    }
    if (parsed === undefined) throw new ApiError(res.status, `the control plane answered something that is not JSON: ${text.slice(0, 200)}`);
    return parsed as T;
  }

  /** `document`: YAML text (syntax errors come back with line and column) or a parsed object. */
  apply(document: unknown, comment?: string): Promise<RevisionAnswer> {
    return this.call('POST', '/v1/apply', { document, comment });
  }

  rollback(revision: number, comment?: string): Promise<RevisionAnswer> {
    return this.call('POST', '/v1/rollback', { revision, comment });
  }

  status(): Promise<StatusAnswer> {
    return this.call('GET', '/v1/status');
  }

  history(opts: { selector?: string; limit?: number } = {}): Promise<{ revisions: RevisionSummary[] }> {
    const q = new URLSearchParams();
    if (opts.selector) q.set('selector', opts.selector);
    if (opts.limit) q.set('limit', String(opts.limit));
    return this.call('GET', `/v1/revisions${q.size > 0 ? `?${q}` : ''}`);
  }

  revision(n: number): Promise<RevisionSummary & { document: Record<string, unknown> }> {
    return this.call('GET', `/v1/revisions/${n}`);
  }

  diff(from: number, to?: number): Promise<DiffAnswer> {
    return this.call('GET', `/v1/diff?from=${from}${to === undefined ? '' : `&to=${to}`}`);
  }
}
