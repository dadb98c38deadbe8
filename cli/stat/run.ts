// The `tsmesh stat` loop: scrape every proxy, wait, scrape again, report the window; with
// `watch`, keep going, each report covering the interval since the previous scrape.
import pLimit from 'p-limit';
import { computeStats, type Scrape } from './compute.js';
import type { StatOutput } from './render.js';
import { scrapeTarget, type TargetSource } from './sources.js';

export interface StatRunOptions {
  readonly source: TargetSource;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly watch: boolean;
  /** Called with every report; returning false stops a watch. */
  readonly report: (out: StatOutput) => boolean | void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Stops a watch between reports. */
  readonly signal?: AbortSignal;
}

export interface Round {
  readonly scrapes: Scrape[];
  readonly problems: string[];
}

/** Scrapes every proxy of the source (at most 16 at once); unreachable ones become problems. */
export async function collect(source: TargetSource, timeoutMs: number, now: () => number = Date.now): Promise<Round> {
  const problems: string[] = [];
  let list;
  try {
    list = await source();
  } catch (err) {
    return { scrapes: [], problems: [(err as Error).message] };
  }
  problems.push(...list.problems);
  const limit = pLimit(16);
  const results = await Promise.all(list.targets.map((t) => limit(() => scrapeTarget(t, now, timeoutMs))));
  const scrapes: Scrape[] = [];
  for (const r of results) {
    if (r.ok) scrapes.push(r.scrape);
    else problems.push(`${r.proxy}: ${r.error}`);
  }
  return { scrapes, problems };
}

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** Runs stat; resolves with the number of proxies read in the last report. */
export async function runStat(o: StatRunOptions): Promise<number> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => defaultSleep(ms, o.signal));
  let previous = await collect(o.source, o.timeoutMs, now);
  for (;;) {
    await sleep(o.intervalMs);
    if (o.signal?.aborted) return 0;
    const current = await collect(o.source, o.timeoutMs, now);
    const stats = computeStats(previous.scrapes, current.scrapes);
    const out: StatOutput = { time: new Date(now()).toISOString(), ...stats, problems: [...new Set([...current.problems])] };
    const more = o.report(out);
    if (!o.watch || more === false || o.signal?.aborted) return stats.proxies;
    previous = current;
  }
}
