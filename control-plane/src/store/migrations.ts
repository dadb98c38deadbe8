// Schema migrations, run by every replica at start. Each runs once, in order, inside one
// transaction holding an advisory lock, so replicas starting together neither race nor
// apply a step twice; applied steps are recorded in a table of their own.
import type pg from 'pg';

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'revisions',
    sql: `
      CREATE TABLE tsmesh_revisions (
        revision    bigserial PRIMARY KEY,
        created_at  timestamptz NOT NULL DEFAULT now(),
        author      text NOT NULL,
        comment     text NOT NULL DEFAULT '',
        selector    text NOT NULL,
        -- json, not jsonb: the document keeps the key order it was written in
        document    json NOT NULL,
        rollback_of bigint REFERENCES tsmesh_revisions (revision)
      );
      CREATE INDEX tsmesh_revisions_selector ON tsmesh_revisions (selector, revision DESC);`,
  },
  {
    version: 2,
    name: 'proxy status and replicas',
    sql: `
      CREATE TABLE tsmesh_replicas (
        replica      text PRIMARY KEY,
        grpc_address text NOT NULL,
        http_address text NOT NULL,
        started_at   timestamptz NOT NULL DEFAULT now(),
        last_seen    timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE tsmesh_proxy_status (
        replica         text NOT NULL,
        stream          bigint NOT NULL,
        node            text NOT NULL,
        selector        text,
        version         text NOT NULL DEFAULT '',
        state           text NOT NULL,
        last_error      text,
        nacked_version  text,
        connected_since timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (replica, stream)
      );`,
  },
  {
    version: 3,
    name: 'proxy admin address',
    // Where each proxy's admin listener is, for `tsmesh status` and `tsmesh stat --server`.
    sql: `ALTER TABLE tsmesh_proxy_status ADD COLUMN admin_address text;`,
  },
];

/** Any 64-bit number unique to this purpose: the advisory lock migrations hold. */
const LOCK_KEY = 7_315_220_481_004;

export async function migrate(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS tsmesh_schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM tsmesh_schema_migrations')).rows.map((r) => r.version));
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO tsmesh_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
