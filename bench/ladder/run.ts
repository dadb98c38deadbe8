// The original report's test, reproduced: for each topology, fresh PostgreSQL and Redis,
// the gateway instances behind it, a short warm-up, then closed-model steps of N users each
// sending POST /query with varying queries in a loop, and one open-model step at a fixed
// arrival rate. Only the load generator talks to the topology; nothing here asserts.
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { runLoad, runLoadInChild, toLoadOptions, type LoadResult, type PlainLoadOptions } from '../loadgen/index.js';
import { startBacking, TOPOLOGIES, type Topology } from '../topologies/index.js';
import type { LadderReport, LadderSettings, StepResult, TopologyRun } from './types.js';

export const DEFAULT_SETTINGS: LadderSettings = {
  topologies: ['nginx', 'tsmesh'],
  steps: [10, 50, 100, 200, 500, 1000, 2000, 5000],
  stepDurationMs: 5000,
  openRate: 2000,
  openDurationMs: 5000,
  openMaxConnections: 1000,
  instances: 5,
  timeoutMs: 10_000,
  errorPauseMs: 0,
  stepWarmupMs: 0,
  distinctQueries: 1000,
  warmupMs: 2000,
  pauseMs: 1000,
  seedDocuments: 10_000,
  childLoadgen: true,
};

function queryRequest(s: LadderSettings): PlainLoadOptions['request'] {
  return { method: 'POST', path: '/query', headers: { 'Content-Type': 'application/json' }, body: { kind: 'queries', distinct: s.distinctQueries } };
}

function load(s: LadderSettings, opts: PlainLoadOptions): Promise<LoadResult> {
  return s.childLoadgen ? runLoadInChild(opts) : runLoad(toLoadOptions(opts));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A counter of the kernel's TcpExt table (Linux /proc/net/netstat), or undefined elsewhere. */
function tcpExt(name: string): number | undefined {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      if (!lines[i]!.startsWith('TcpExt:')) continue;
      const names = lines[i]!.split(' ');
      const values = lines[i + 1]!.split(' ');
      const at = names.indexOf(name);
      return at > 0 ? Number(values[at]) : undefined;
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/** A kernel setting (Linux /proc/sys), or undefined elsewhere. */
function sysctl(path: string): number | undefined {
  try {
    return Number(readFileSync(`/proc/sys/${path}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Runs one step and adds what the kernel saw meanwhile: connections dropped because a listen
 * queue was full (the client retransmits its SYN after 1 s, 3 s, ...: seconds of latency, not
 * an error). Counted for the whole machine, so other processes' listeners count too.
 */
async function withKernelCounts(run: () => Promise<LoadResult>, topo: Topology): Promise<{ result: LoadResult; server: Record<string, number> }> {
  const before = tcpExt('ListenOverflows');
  const result = await run();
  const server = (await topo.sample?.()) ?? {};
  const after = tcpExt('ListenOverflows');
  if (before !== undefined && after !== undefined && after > before) server['listen queue overflows (kernel, whole machine)'] = after - before;
  return { result, server };
}

async function runTopology(name: string, s: LadderSettings, log: (line: string) => void): Promise<TopologyRun> {
  const start = TOPOLOGIES[name];
  if (!start) throw new Error(`unknown topology "${name}"; known: ${Object.keys(TOPOLOGIES).join(', ')}`);
  const steps: StepResult[] = [];
  log(`[${name}] starting PostgreSQL and Redis`);
  const backing = await startBacking();
  let topo: Topology | undefined;
  try {
    topo = await start({ instances: s.instances, backing, seedDocuments: s.seedDocuments, log: (l) => log(`[${name}] ${l}`) });
    const url = topo.url;
    if (s.warmupMs > 0) {
      log(`[${name}] warm-up ${s.warmupMs} ms (fills the query cache; not reported)`);
      await load(s, { model: 'closed', url, request: queryRequest(s), users: 20, durationMs: s.warmupMs, timeoutMs: s.timeoutMs, errorBackoffMs: s.errorPauseMs, errorAnswerBackoffMs: s.errorPauseMs });
    }
    await topo.sample?.();
    for (const users of s.steps) {
      await sleep(s.pauseMs);
      log(`[${name}] ${users} users for ${s.stepDurationMs} ms`);
      const { result, server } = await withKernelCounts(
        () => load(s, { model: 'closed', url, request: queryRequest(s), users, durationMs: s.stepDurationMs, warmupMs: s.stepWarmupMs, timeoutMs: s.timeoutMs, errorBackoffMs: s.errorPauseMs, errorAnswerBackoffMs: s.errorPauseMs }),
        topo,
      );
      steps.push({ kind: 'closed', users, result, server });
      log(`[${name}]   ${summaryLine(result)}`);
    }
    if (s.openRate > 0) {
      await sleep(s.pauseMs);
      log(`[${name}] open model: ${s.openRate} requests/s for ${s.openDurationMs} ms (at most ${s.openMaxConnections} connections)`);
      const { result, server } = await withKernelCounts(
        () => load(s, { model: 'open', url, request: queryRequest(s), rate: s.openRate, durationMs: s.openDurationMs, maxConnections: s.openMaxConnections, timeoutMs: s.timeoutMs }),
        topo,
      );
      steps.push({ kind: 'open', users: s.openMaxConnections, rate: s.openRate, result, server });
      log(`[${name}]   ${summaryLine(result)}`);
    }
    return { name, description: topo.description, steps };
  } catch (err) {
    log(`[${name}] failed: ${(err as Error).message}`);
    return { name, description: topo?.description ?? name, steps, error: (err as Error).message };
  } finally {
    await topo?.stop().catch((err: Error) => log(`[${name}] stop failed: ${err.message}`));
    await backing.stop();
  }
}

export function summaryLine(r: LoadResult): string {
  const l = r.latencyMs;
  const lat = l ? `p50 ${l.p50} ms, p95 ${l.p95} ms, p99 ${l.p99} ms` : 'no successes';
  const errs = Object.entries(r.errors)
    .filter(([k, v]) => k !== 'total' && v > 0)
    .map(([k, v]) => `${k} ${v}`);
  for (const [reason, x] of Object.entries(r.tsmesh)) errs.push(`tsmesh ${reason} ${x.count}`);
  return `${r.requests} requests, ${r.rps} req/s, ${r.successPct} % ok, ${lat}${errs.length ? `; ${errs.join(', ')}` : ''}`;
}

export async function runLadder(settings: Partial<LadderSettings> = {}, log: (line: string) => void = () => {}): Promise<LadderReport> {
  const s: LadderSettings = { ...DEFAULT_SETTINGS, ...settings };
  for (const t of s.topologies) if (!TOPOLOGIES[t]) throw new Error(`unknown topology "${t}"; known: ${Object.keys(TOPOLOGIES).join(', ')}`);
  const startedAt = new Date().toISOString();
  const topologies: TopologyRun[] = [];
  for (const name of s.topologies) topologies.push(await runTopology(name, s, log));
  const c = cpus();
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: c.length,
      cpuModel: c[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      somaxconn: sysctl('net/core/somaxconn'),
    },
    settings: s,
    topologies,
  };
}
