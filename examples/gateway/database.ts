// The gateway's PostgreSQL side: a bounded pg-pool, idempotent migrations serialised by an
// advisory lock (several instances may start at once on one empty database), and the
// full-text search the API serves. PostgreSQL builds the JSON of the rows itself, so the
// answer travels to the client and to the cache as one string, never re-encoded in JS.
import pg from 'pg';
import Pool from 'pg-pool';
import { generateDocuments } from './seed.js';

export interface DatabaseOptions {
  readonly url: string;
  /** Connections per instance (pg's own default is 10). */
  readonly poolSize?: number;
  /** Bound on connecting and on waiting for a free pooled connection. */
  readonly connectTimeoutMs?: number;
  /** Server-side statement_timeout, and (plus a margin) the client-side read timeout. */
  readonly queryTimeoutMs?: number;
  /** Rows generated into an empty `documents` table. */
  readonly seedDocuments?: number;
  readonly onError?: (err: Error) => void;
}

export interface SearchResult {
  readonly count: number;
  /** JSON array text of `{id, title, snippet, rank}` objects, best match first. */
  readonly rowsJson: string;
}

export interface MigrationResult {
  /** Versions applied by this call (empty when another instance already did it). */
  readonly applied: number[];
  readonly seeded: number;
}

// Any constant works: it only has to be the same for every instance of the example.
const MIGRATION_LOCK_KEY = 7_413_560_001;

interface Migration {
  readonly version: number;
  readonly run: (client: pg.Client, seedDocuments: number) => Promise<number>;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    run: async (client) => {
      await client.query(`
        CREATE TABLE IF NOT EXISTS documents (
          id bigserial PRIMARY KEY,
          title text NOT NULL,
          body text NOT NULL,
          tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || body)) STORED
        )`);
      await client.query('CREATE INDEX IF NOT EXISTS documents_tsv_idx ON documents USING gin (tsv)');
      return 0;
    },
  },
  {
    version: 2,
    run: async (client, seedDocuments) => {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM documents');
      if (rows[0]!.n > 0) return 0;
      let seeded = 0;
      for (const batch of generateDocuments(seedDocuments)) {
        await client.query('INSERT INTO documents (title, body) SELECT * FROM unnest($1::text[], $2::text[])', [batch.titles, batch.bodies]);
        seeded += batch.titles.length;
      }
      await client.query('ANALYZE documents');
      return seeded;
    },
  },
];

const SEARCH_SQL = `
  SELECT count(*)::int AS count, coalesce(json_agg(r), '[]')::text AS rows
  FROM (
    SELECT d.id, d.title, left(d.body, 160) AS snippet, round(ts_rank(d.tsv, q)::numeric, 4)::float8 AS rank
    FROM documents d, websearch_to_tsquery('english', $1) q
    WHERE d.tsv @@ q
    ORDER BY rank DESC, d.id
    LIMIT $2
  ) r`;

export class Database {
  readonly pool: pg.Pool;
  private readonly url: string;
  private readonly connectTimeoutMs: number;
  private readonly seedDocuments: number;

  constructor(opts: DatabaseOptions) {
    this.url = opts.url;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.seedDocuments = opts.seedDocuments ?? 10_000;
    const queryTimeoutMs = opts.queryTimeoutMs ?? 2000;
    this.pool = new Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: this.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      statement_timeout: queryTimeoutMs,
      // The server enforces statement_timeout; this catches a server that stopped answering.
      query_timeout: queryTimeoutMs + 1000,
      application_name: 'tsmesh-gateway',
      keepAlive: true,
    }, pg.Client);
    // An idle client whose server went away emits here; unhandled, it would crash the process.
    this.pool.on('error', (err) => opts.onError?.(err));
  }

  /** Creates and fills the schema if needed; safe when several instances run it at once. */
  async migrate(): Promise<MigrationResult> {
    // A dedicated client without the request path's timeouts: seeding and waiting for the
    // lock held by another instance both take longer than any query should.
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000, application_name: 'tsmesh-gateway-migrate' });
    client.on('error', () => {}); // surfaced by the failing query below
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await client.query('CREATE TABLE IF NOT EXISTS gateway_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM gateway_migrations');
      const done = new Set(rows.map((r) => r.version));
      const applied: number[] = [];
      let seeded = 0;
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        seeded += await m.run(client, this.seedDocuments);
        await client.query('INSERT INTO gateway_migrations (version) VALUES ($1)', [m.version]);
        applied.push(m.version);
      }
      await client.query('COMMIT');
      return { applied, seeded };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async search(text: string, limit: number): Promise<SearchResult> {
    const { rows } = await this.pool.query<{ count: number; rows: string }>({ name: 'gateway-search', text: SEARCH_SQL, values: [text, limit] });
    return { count: rows[0]!.count, rowsJson: rows[0]!.rows };
  }

  /** Round trip time of `SELECT 1` in ms; throws when the database is unreachable. */
  async ping(): Promise<number> {
    const start = performance.now();
    await this.pool.query('SELECT 1');
    return performance.now() - start;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
