// Deterministic generated documents for the example's `documents` table: the same seed gives
// the same rows on every machine, so a query's answer is reproducible.
import { WORDS } from './vocabulary.js';

export interface GeneratedBatch {
  readonly titles: string[];
  readonly bodies: string[];
}

/** mulberry32: a tiny, fast, seedable PRNG; quality is plenty for filler text (also the load generator's and the test fault upstream's randomness). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function words(rand: () => number, min: number, max: number): string {
  const n = min + Math.floor(rand() * (max - min + 1));
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(rand() * WORDS.length)]!);
  return out.join(' ');
}

/** Yields `count` documents in batches of at most `batchSize`. */
export function* generateDocuments(count: number, batchSize = 2000, seed = 20240501): Generator<GeneratedBatch> {
  const rand = prng(seed);
  for (let done = 0; done < count; ) {
    const n = Math.min(batchSize, count - done);
    const titles: string[] = [];
    const bodies: string[] = [];
    for (let i = 0; i < n; i++) {
      const title = words(rand, 3, 6);
      titles.push(title.charAt(0).toUpperCase() + title.slice(1));
      bodies.push(`${words(rand, 20, 40)}.`);
    }
    done += n;
    yield { titles, bodies };
  }
}
