// Request bodies for POST /query: varying queries built from the gateway's own vocabulary,
// so they find rows, with a bounded number of distinct ones (a hot set the cache can hold,
// like real traffic). Precomputed: a request costs one random index.
import { WORDS } from '../../examples/gateway/vocabulary.js';
import { prng } from '../../examples/gateway/seed.js';

export interface QueryBodiesOptions {
  /** Distinct queries (single words first, then word pairs); default 1000. */
  readonly distinct?: number;
  readonly seed?: number;
}

export function queryTexts(opts: QueryBodiesOptions = {}): string[] {
  const distinct = opts.distinct ?? 1000;
  if (!Number.isInteger(distinct) || distinct < 1 || distinct > WORDS.length * WORDS.length) {
    throw new Error(`distinct queries must be 1-${WORDS.length * WORDS.length} (got ${distinct})`);
  }
  const rand = prng(opts.seed ?? 7);
  const out = WORDS.slice(0, Math.min(distinct, WORDS.length));
  const seen = new Set(out);
  while (out.length < distinct) {
    const q = `${WORDS[Math.floor(rand() * WORDS.length)]} ${WORDS[Math.floor(rand() * WORDS.length)]}`;
    if (!seen.has(q)) {
      seen.add(q);
      out.push(q);
    }
  }
  return out;
}

/** A body function for RequestSpec.body: a random one of the distinct queries per request. */
export function queryBodies(opts: QueryBodiesOptions = {}): (seq: number) => string {
  const bodies = queryTexts(opts).map((q) => JSON.stringify({ query: q }));
  const rand = prng((opts.seed ?? 7) + 1);
  return () => bodies[Math.floor(rand() * bodies.length)]!;
}

/** The gateway's POST /query request with varying queries. */
export function queryRequest(opts: QueryBodiesOptions = {}) {
  return { method: 'POST', path: '/query', headers: { 'Content-Type': 'application/json' }, body: queryBodies(opts) };
}
