// The last config a proxy applied from the control plane, kept on disk so that a proxy that
// (re)starts while the control plane is unreachable still serves with its last good config.
// Written atomically: a temporary file in the same directory, flushed, then renamed over the
// old one, so a crash mid-write leaves the previous copy, never half a file.
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const FILE = 'snapshot.json';
const FORMAT = 1;

export interface CachedSnapshot {
  readonly version: string;
  readonly node: string;
  readonly savedAt: string;
  /** The streamed document, YAML-shaped (the proxy's bootstrap fields are not part of it). */
  readonly document: Record<string, unknown>;
}

export type CacheLoad = { ok: true; value: CachedSnapshot } | { ok: false; missing: boolean; error: string };

export class DiskCache {
  readonly path: string;

  constructor(readonly dir: string) {
    this.path = join(dir, FILE);
  }

  async save(entry: Omit<CachedSnapshot, 'savedAt'>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const text = JSON.stringify({ format: FORMAT, ...entry, savedAt: new Date().toISOString() }, null, 2) + '\n';
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The rename itself is durable only once the directory is flushed.
    const dh = await open(this.dir, 'r').catch(() => undefined);
    await dh?.sync().catch(() => {});
    await dh?.close();
  }

  async load(): Promise<CacheLoad> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      return { ok: false, missing, error: missing ? `no cached config at ${this.path}` : `${this.path}: ${(err as Error).message}` };
    }
    try {
      const v = JSON.parse(text) as Partial<CachedSnapshot> & { format?: number };
      if (v.format !== FORMAT || typeof v.version !== 'string' || typeof v.node !== 'string' || typeof v.document !== 'object' || v.document === null) {
        return { ok: false, missing: false, error: `${this.path}: not a tsmesh config cache (format ${FORMAT})` };
      }
      return { ok: true, value: { version: v.version, node: v.node, savedAt: String(v.savedAt), document: v.document } };
    } catch (err) {
      return { ok: false, missing: false, error: `${this.path}: ${(err as Error).message}` };
    }
  }
}
