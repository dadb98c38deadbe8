// What the retry budget lets through, on fake time (no sockets, deterministic): the whole
// resilience chain over a simulated three-endpoint cluster under open-model load, with issue
// 3's example retry config (2 retries, backoff 25 ms / 250 ms, per-try 500 ms, budget 20 % / 3).
// Two cases per latency and load: 20 % of answers are 503 (issue 3, scenario 2: success >= 99 %,
// attempts/request <= 1.25) and every answer is 503 (scenario 3: attempts/request <= 1.25).
// Prints the table of docs/policies.md, "Retry budget"; asserts nothing.
// `npm run bench:retry-budget` (BENCH_SECONDS, default 20: longer than the 10 s budget window).
import { buildResiliencePolicies } from '../proxy/src/policy/resilience.js';
import { compose } from '../proxy/src/policy/types.js';
import { seededRandom } from '../test/support/fault-upstream.js';
import { harness, metricValue } from '../test/support/policy-fixtures.js';
import { openLoad, simulatedUpstream } from '../test/support/simulated-cluster.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const budget = process.env.BENCH_BUDGET ? (JSON.parse(process.env.BENCH_BUDGET) as Record<string, unknown>) : {};

const retry = { attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], perTryTimeout: '500ms', backoff: { base: '25ms', max: '250ms' }, budget };

async function run(latency: number, perMs: number, failShare: number) {
  const h = harness({ route: { timeout: '2s', retry }, cluster: failShare < 1 ? { outlierDetection: { enabled: false } } : {} });
  const random = seededRandom(3);
  const up = simulatedUpstream(h, () => ({ latency, answer: random() < failShare ? 503 : 'ok' }));
  const chain = compose(buildResiliencePolicies(h.build()), up.handler);
  const outcomes = await openLoad(h, chain, perMs, seconds * 1000);
  const refused = await metricValue(h.metrics, 'tsmesh_retry_budget_exhausted_total', { route: 'query', cluster: 'gateway' });
  return {
    success: outcomes.filter((o) => o.status === 200).length / outcomes.length,
    ratio: up.attempts() / outcomes.length,
    refusedPerRequest: refused / outcomes.length,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
console.log(`retry budget ${JSON.stringify(budget)}, ${seconds} s of open-model load per row`);
console.log('| upstream latency | load | 20 % 503: success | attempts/request | refused/request | all 503: attempts/request |');
console.log('|---|---|---|---|---|---|');
for (const latency of [2, 10]) {
  for (const perMs of [0.05, 1, 5]) {
    const partial = await run(latency, perMs, 0.2);
    const all = await run(latency, perMs, 1);
    console.log(
      `| ${latency} ms | ${perMs * 1000} req/s | ${pct(partial.success)} | ${partial.ratio.toFixed(3)} | ${partial.refusedPerRequest.toFixed(3)} | ${all.ratio.toFixed(3)} |`,
    );
  }
}
