// What the retry budget lets through, on fake time (no sockets, deterministic): the whole
// resilience chain over a simulated three-endpoint cluster under open-model load, with issue
// 3's example retry config (2 retries, backoff 25 ms / 250 ms, per-try 500 ms, budget 20 % / 3).
// Two cases per latency and load: 20 % of answers are 503 (issue 3, scenario 2: success >= 99 %,
// attempts/request <= 1.25) and every answer is 503 (scenario 3: attempts/request <= 1.25).
// Each row runs BENCH_SEEDS seeds (default 5) and prints the mean (and the worst seed's success).
// Prints the table of docs/policies.md, "Retry budget"; asserts nothing.
// `npm run bench:retry-budget` (BENCH_SECONDS, default 20: longer than the 10 s budget window).
import { seededRandom } from '../test/support/fault-upstream.js';
import { harness, metricValue } from '../test/support/policy-fixtures.js';
import { openLoad, seededResilienceChain, simulatedUpstream } from '../test/support/simulated-cluster.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const seeds = Number(process.env.BENCH_SEEDS ?? 5);
const budget = process.env.BENCH_BUDGET ? (JSON.parse(process.env.BENCH_BUDGET) as Record<string, unknown>) : {};

const retry = { attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], perTryTimeout: '500ms', backoff: { base: '25ms', max: '250ms' }, budget };

async function run(latency: number, perMs: number, failShare: number, seed: number) {
  const h = harness({ route: { timeout: '2s', retry }, cluster: failShare < 1 ? { outlierDetection: { enabled: false } } : {} });
  const random = seededRandom(seed);
  const up = simulatedUpstream(h, () => ({ latency, answer: random() < failShare ? 503 : 'ok' }));
  const chain = seededResilienceChain(h.build(), up.handler, seededRandom(seed + 1000));
  const outcomes = await openLoad(h, chain, perMs, seconds * 1000);
  const refused = await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' });
  return {
    success: outcomes.filter((o) => o.status === 200).length / outcomes.length,
    ratio: up.attempts() / outcomes.length,
    refusedPerRequest: refused / outcomes.length,
  };
}

async function mean(latency: number, perMs: number, failShare: number) {
  const runs: Array<Awaited<ReturnType<typeof run>>> = [];
  for (let seed = 1; seed <= seeds; seed++) runs.push(await run(latency, perMs, failShare, seed));
  const avg = (f: (r: (typeof runs)[number]) => number): number => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  return {
    success: avg((r) => r.success),
    worst: Math.min(...runs.map((r) => r.success)),
    ratio: avg((r) => r.ratio),
    refusedPerRequest: avg((r) => r.refusedPerRequest),
  };
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
console.log(`retry budget ${JSON.stringify(budget)}, ${seconds} s of open-model load per row, mean of ${seeds} seeds`);
console.log('| upstream latency | load | 20 % 503: success (worst seed) | attempts/request | refused/request | all 503: attempts/request |');
console.log('|---|---|---|---|---|---|');
for (const latency of [0, 2, 10]) {
  for (const perMs of [0.05, 0.3, 1, 5]) {
    const partial = await mean(latency, perMs, 0.2);
    const all = await mean(latency, perMs, 1);
    console.log(
      `| ${latency} ms | ${perMs * 1000} req/s | ${pct(partial.success)} (${pct(partial.worst)}) | ${partial.ratio.toFixed(3)} | ${partial.refusedPerRequest.toFixed(4)} | ${all.ratio.toFixed(3)} |`,
    );
  }
}
