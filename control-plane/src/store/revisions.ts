// Config revisions in PostgreSQL. Every apply (and every rollback) is a new row; a
// selector's latest row is what its proxies run. Each insert NOTIFYs the revision number in
// the same transaction, so every replica LISTENing learns of it when it commits.
import pg from 'pg';

export const REVISIONS_CHANNEL = 'tsmesh_revisions';

export interface RevisionSummary {
  readonly revision: number;
  readonly createdAt: Date;
  readonly author: string;
  readonly comment: string;
  readonly selector: string;
  readonly rollbackOf: number | null;
}

export interface Revision extends RevisionSummary {
  readonly document: Record<string, unknown>;
}

export interface NewRevision {
  readonly selector: string;
  readonly document: Record<string, unknown>;
  readonly author: string;
  readonly comment: string;
  readonly rollbackOf?: number;
}

interface Row {
  revision: string;
  created_at: Date;
  author: string;
  comment: string;
  selector: string;
  rollback_of: string | null;
  document?: Record<string, unknown>;
}

const SUMMARY = 'revision, created_at, author, comment, selector, rollback_of';

function summary(r: Row): RevisionSummary {
  return {
    revision: Number(r.revision),
    createdAt: r.created_at,
    author: r.author,
    comment: r.comment,
    selector: r.selector,
    rollbackOf: r.rollback_of === null ? null : Number(r.rollback_of),
  };
}

function full(r: Row): Revision {
  return { ...summary(r), document: r.document! };
}

export class RevisionStore {
  constructor(private readonly pool: pg.Pool) {}

  async create(rev: NewRevision): Promise<Revision> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<Row>(
        `INSERT INTO tsmesh_revisions (author, comment, selector, document, rollback_of)
         VALUES ($1, $2, $3, $4, $5) RETURNING ${SUMMARY}, document`,
        [rev.author, rev.comment, rev.selector, JSON.stringify(rev.document), rev.rollbackOf ?? null],
      );
      await client.query('SELECT pg_notify($1, $2)', [REVISIONS_CHANNEL, rows[0]!.revision]);
      await client.query('COMMIT');
      return full(rows[0]!);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async get(revision: number): Promise<Revision | undefined> {
    const { rows } = await this.pool.query<Row>(`SELECT ${SUMMARY}, document FROM tsmesh_revisions WHERE revision = $1`, [revision]);
    return rows[0] ? full(rows[0]) : undefined;
  }

  /** The revision of the same selector just before this one. */
  async previous(rev: RevisionSummary): Promise<Revision | undefined> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${SUMMARY}, document FROM tsmesh_revisions WHERE selector = $1 AND revision < $2 ORDER BY revision DESC LIMIT 1`,
      [rev.selector, rev.revision],
    );
    return rows[0] ? full(rows[0]) : undefined;
  }

  /** Newest first. */
  async list(opts: { selector?: string; limit?: number } = {}): Promise<RevisionSummary[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT ${SUMMARY} FROM tsmesh_revisions WHERE ($1::text IS NULL OR selector = $1) ORDER BY revision DESC LIMIT $2`,
      [opts.selector ?? null, opts.limit ?? 50],
    );
    return rows.map(summary);
  }

  /** The latest revision of every selector, with the first revision of that selector (its age). */
  async latestPerSelector(): Promise<Array<Revision & { firstRevision: number }>> {
    const { rows } = await this.pool.query<Row & { first_revision: string }>(
      `SELECT DISTINCT ON (r.selector) r.revision, r.created_at, r.author, r.comment, r.selector, r.rollback_of, r.document,
              (SELECT min(f.revision) FROM tsmesh_revisions f WHERE f.selector = r.selector) AS first_revision
       FROM tsmesh_revisions r ORDER BY r.selector, r.revision DESC`,
    );
    return rows.map((r) => ({ ...full(r), firstRevision: Number(r.first_revision) }));
  }

  async firstRevisionOf(selector: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ min: string | null }>('SELECT min(revision) FROM tsmesh_revisions WHERE selector = $1', [selector]);
    return rows[0]?.min == null ? undefined : Number(rows[0].min);
  }
}

export interface RevisionListener {
  close(): Promise<void>;
}

/**
 * LISTENs on its own connection for new revisions. When the connection is lost it
 * reconnects with backoff and calls `onResync`, since notifications sent meanwhile are gone.
 */
export async function listenForRevisions(
  connectionString: string,
  handlers: { onRevision: (revision: number) => void; onResync: () => void; onError?: (err: Error) => void },
): Promise<RevisionListener> {
  let closed = false;
  let client: pg.Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let attempt = 0;

  const connect = async (first: boolean): Promise<void> => {
    const c = new pg.Client({ connectionString, keepAlive: true });
    c.on('notification', (msg) => {
      const n = Number(msg.payload);
      if (msg.channel === REVISIONS_CHANNEL && Number.isSafeInteger(n)) handlers.onRevision(n);
    });
    c.on('error', (err) => {
      handlers.onError?.(err);
      lost(c);
    });
    c.on('end', () => lost(c));
    await c.connect();
    await c.query(`LISTEN ${REVISIONS_CHANNEL}`);
    if (closed) {
      await c.end().catch(() => {});
      return;
    }
    client = c;
    attempt = 0;
    if (!first) handlers.onResync();
  };

  const lost = (c: pg.Client) => {
    if (client !== c || closed) return;
    client = undefined;
    c.end().catch(() => {});
    schedule();
  };

  const schedule = () => {
    if (closed || retryTimer) return;
    const delay = Math.random() * Math.min(5000, 100 * 2 ** attempt++);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect(false).catch((err: Error) => {
        handlers.onError?.(err);
        schedule();
      });
    }, delay);
    retryTimer.unref();
  };

  await connect(true);
  return {
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
