// What changed between two documents, by path, naming list items by their `name` like the
// validator does ("listeners.edge.routes.query.timeout: 2s -> 3s"), so a diff reads like the
// error messages and survives reordering of named items.

export interface Change {
  readonly op: 'add' | 'remove' | 'change';
  readonly path: string;
  readonly from?: unknown;
  readonly to?: unknown;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const named = (v: unknown): v is Obj & { name: string } => isObject(v) && typeof v.name === 'string';

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function walk(a: unknown, b: unknown, path: string, out: Change[]): void {
  if (a === undefined && b === undefined) return;
  if (a === undefined) {
    out.push({ op: 'add', path, to: b });
    return;
  }
  if (b === undefined) {
    out.push({ op: 'remove', path, from: a });
    return;
  }
  if (isObject(a) && isObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !(k in a))];
    for (const k of keys) walk(a[k], b[k], join(path, k), out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length + b.length > 0 && [...a, ...b].every(named)) {
    const byName = (list: unknown[]) => new Map(list.map((i) => [(i as { name: string }).name, i]));
    const ma = byName(a);
    const mb = byName(b);
    for (const [name, item] of ma) walk(item, mb.get(name), join(path, name), out);
    for (const [name, item] of mb) if (!ma.has(name)) walk(undefined, item, join(path, name), out);
    const orderA = [...ma.keys()].filter((n) => mb.has(n));
    const orderB = [...mb.keys()].filter((n) => ma.has(n));
    // Order matters for routes (first match wins), so a reordering is a change of its own.
    if (orderA.join('\0') !== orderB.join('\0')) out.push({ op: 'change', path: `${path} (order)`, from: orderA, to: orderB });
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ op: 'change', path: path || '(document)', from: a, to: b });
}

export function diffDocuments(from: unknown, to: unknown): Change[] {
  const out: Change[] = [];
  walk(from, to, '', out);
  return out;
}

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** One line per change: "+ path: value", "- path: value", "~ path: old -> new". */
export function formatChanges(changes: readonly Change[]): string[] {
  return changes.map((c) =>
    c.op === 'add' ? `+ ${c.path}: ${show(c.to)}` : c.op === 'remove' ? `- ${c.path}: ${show(c.from)}` : `~ ${c.path}: ${show(c.from)} -> ${show(c.to)}`,
  );
}
