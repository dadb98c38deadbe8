// What the resilience chain costs per request in-process (no sockets): the admitted path
// through every policy against a bare handler, and each rejection path. Prints figures and
// ratios from one run; asserts nothing. `npm run bench:policies`.
import { Registry } from 'prom-client';
import { systemClock } from '../proxy/src/clock.js';
import { cluster as clusterSchema, route as routeSchema } from '../proxy/src/config/schema.js';
import { buildPolicies } from '../proxy/src/policy/chain.js';
import { StateStore } from '../proxy/src/policy/state-store.js';
import { localRateLimiterFactory } from '../proxy/src/policy/token-bucket.js';
import { compose, type Handler, type Outcome, type PolicyBuildContext, type RequestContext, type UpstreamResponse } from '../proxy/src/policy/types.js';
import { ClusterState } from '../proxy/src/upstream/cluster-state.js';
import { ProxyMetrics } from '../proxy/src/telemetry/metrics.js';

const N = Number(process.env.BENCH_N ?? 200_000);

function setup(route: Record<string, unknown>, cluster: Record<string, unknown>) {
  const c = new ClusterState(clusterSchema.parse({ name: 'gateway', endpoints: ['127.0.0.1:9001', '127.0.0.1:9002'], ...cluster }));
  const r = routeSchema.parse({ name: 'query', cluster: 'gateway', ...route });
  const b: PolicyBuildContext = {
    clock: systemClock,
    route: r,
    cluster: c,
    routeState: new StateStore(),
    metrics: new ProxyMetrics(new Registry()),
    rateLimiters: localRateLimiterFactory(systemClock),
  };
  const ep = c.endpoints[0]!;
  const ok: UpstreamResponse = { kind: 'upstream', status: 200, endpoint: ep, header: () => undefined, latencyMs: 1, discard() {} };
  const ctxOf = (): RequestContext => {
    const now = systemClock.now();
    return {
      request: { method: 'GET', target: '/', header: () => undefined, idempotent: true, bodyLength: 0, replayable: true },
      route: r,
      cluster: c,
      clock: systemClock,
      startTime: now,
      deadline: now + 2000,
      attemptDeadline: now + 2000,
      attempts: 0,
      failedEndpoints: [],
      requestSent: false,
      aborted: false,
      cancel: undefined,
      reason: undefined,
    };
  };
  return { b, ok, ctxOf, cluster: c };
}

async function time(label: string, handler: Handler, ctxOf: () => RequestContext): Promise<number> {
  for (let i = 0; i < 20_000; i++) await handler(ctxOf()); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await handler(ctxOf());
  const ns = Number(process.hrtime.bigint() - start) / N;
  console.log(`${label.padEnd(58)} ${ns.toFixed(0).padStart(7)} ns/request`);
  return ns;
}

const full = {
  route: { rateLimit: { requestsPerSecond: 1e9, burst: 1_000_000 }, retry: { attempts: 2, perTryTimeout: '500ms' } },
  cluster: { concurrency: { adaptive: { algorithm: 'gradient2', initial: 1000, min: 4, max: 1000 } } },
};

{
  const { b, ok, ctxOf } = setup(full.route, full.cluster);
  const bare: Handler = async () => ok;
  console.log(`policy hot path, ${N} sequential requests per row (one process, no sockets)`);
  const base = await time('bare bottom handler', bare, ctxOf);
  const chain = compose(buildPolicies(b), bare);
  const all = await time('rate-limit, gradient2, breaker, retry, outlier: admitted', chain, ctxOf);
  console.log(`${'  chain overhead per admitted request'.padEnd(58)} ${(all - base).toFixed(0).padStart(7)} ns (${(all / base).toFixed(2)}x bare)`);
}
{
  // Concurrency limit 1 held by a request that never finishes, no queue: every call is rejected.
  const { b, ok, ctxOf } = setup({}, { concurrency: { limit: 1, queue: { max: 0, timeout: '50ms' } } });
  const hold: Handler = () => new Promise<Outcome>(() => {});
  const chain = compose(buildPolicies(b), async (ctx) => (ctx.attempts === -1 ? ok : hold(ctx)));
  void chain(ctxOf());
  await time('concurrency full: 503 overloaded', chain, ctxOf);
}
{
  const { b, ctxOf } = setup({}, { circuitBreaker: { maxRequests: 1 } });
  const chain = compose(buildPolicies(b), () => new Promise<Outcome>(() => {}));
  void chain(ctxOf());
  await time('breaker at maxRequests: 503 circuit_open', chain, ctxOf);
}
{
  const { b, ok, ctxOf } = setup({ rateLimit: { requestsPerSecond: 0.001, burst: 1 } }, {});
  const chain = compose(buildPolicies(b), async () => ok);
  await time('rate limit spent: 429 rate_limited (headers built per answer)', chain, ctxOf);
}
