// Retries that cannot multiply an overload (issue 3, "Retries").
//
// - Only the configured conditions are retried: connect-failure, reset, gateway-error (502,
//   503 and 504, which like Envoy's `gateway-error` also covers connect failures, resets and
//   per-try timeouts, the proxy's own 503/502/504), retriable-status (retriableStatuses) and
//   timeout (a per-try timeout that left time before the route deadline).
// - `attempts` is the number of retries after the first try. `perTryTimeout` bounds each
//   attempt through ctx.attemptDeadline, never past ctx.deadline.
// - Backoff is exponential with full jitter (AWS Architecture Blog, "Exponential Backoff And
//   Jitter"): retry n sleeps uniform[0, min(max, base * 2^(n-1))). A Retry-After on a 429/503
//   replaces the backoff when the pause fits before the deadline; otherwise the answer is
//   returned as it is, since the server said it will not do better in time.
// - The retry budget (retry-budget.ts) is count-based over a 10 s sliding window per cluster,
//   as Finagle's and Linkerd's are: retries may be at most `percent` % of all attempts (first
//   tries + retries), i.e. percent / (100 - percent) retries per first try, 0.25 at the default
//   20 %, with `minConcurrent` as a bounded floor for low traffic. First tries are counted when
//   they are sent, retries when they are granted. A retry counts in ClusterState.activeRetries
//   from the moment it is granted (including its backoff) until its attempt is answered, as
//   Envoy's RetryStateImpl holds its `retries` resource; the floor reads that count. With the
//   budget on, circuitBreaker.maxRetries is ignored as in Envoy; with `budget.enabled: false`
//   that fixed cap on activeRetries applies instead. docs/policies.md, "Retry budget", says why
//   not Envoy's concurrency budget and what each lets through.
// - Non-idempotent requests: once any byte reached the upstream, a request is sent again only
//   if its body is still held (`replayable`) and it is idempotent (GET/PUT/... or, for
//   POST/PATCH, an Idempotency-Key header), unless `idempotentOnly: false`. Before anything was
//   sent, any request may be retried: the upstream cannot have acted on it.
// - A retry prefers other endpoints: failed endpoints go into ctx.failedEndpoints (the core adds
//   its own connection failures; this policy adds endpoints that answered a retriable status).
// - The answer of a discarded attempt is discard()ed before the next attempt starts; the final
//   outcome is whatever the last attempt returned.
import type { RetryConfig } from '../config/schema.js';
import { RetryBudgetRule, retryWindowOf } from './retry-budget.js';
import { clusterScrapeHooks } from './scrape-hooks.js';
import type { Outcome, Policy, PolicyBuildContext, RequestContext } from './types.js';
import { CLIENT_CLOSED, sleep } from './wait.js';

export interface RetryOptions {
  /** Uniform [0, 1) source for the backoff jitter (tests pass a fixed one). */
  random?: () => number;
  /** Wall-clock milliseconds, only to read a Retry-After given as an HTTP date. */
  wallClock?: () => number;
}

/** The chain's builder: undefined when the route has no retry block. */
export function buildRetry(b: PolicyBuildContext): Policy | undefined {
  return createRetryPolicy(b);
}

export function createRetryPolicy(b: PolicyBuildContext, options: RetryOptions = {}): Policy | undefined {
  const cfg: RetryConfig | undefined = b.route.retry;
  // Nothing to do per request: no retries and no per-try bound (the core's attempt deadline is the request's).
  if (!cfg || (cfg.attempts === 0 && cfg.perTryTimeout === undefined)) return undefined;
  const random = options.random ?? Math.random;
  const wallClock = options.wallClock ?? Date.now;
  const cluster = b.cluster;

  // Everything the request path needs, read from config once per snapshot.
  const maxRetries = cfg.attempts;
  const perTryTimeout = cfg.perTryTimeout;
  const on = new Set(cfg.on);
  const onGatewayError = on.has('gateway-error');
  const onConnectFailure = onGatewayError || on.has('connect-failure');
  const onReset = onGatewayError || on.has('reset');
  const onTimeout = onGatewayError || on.has('timeout');
  const retriableStatuses = on.has('retriable-status') ? new Set(cfg.retriableStatuses) : new Set<number>();
  const backoffBase = cfg.backoff.base;
  const backoffMax = Math.max(cfg.backoff.max, cfg.backoff.base);
  const budgetOn = cfg.budget.enabled;
  const budget = new RetryBudgetRule(cfg.budget.percent, cfg.budget.minConcurrent);
  // Counted even with the budget off, so other routes' budgets on this cluster see this traffic.
  const window = retryWindowOf(cluster);
  const fixedMaxRetries = cluster.config.circuitBreaker.maxRetries;
  const idempotentOnly = cfg.idempotentOnly;

  const retries = b.metrics.retries.labels(b.route.name, cluster.name);
  const budgetExhausted = b.metrics.retryBudgetExhausted.labels(b.route.name, cluster.name);
  const retryOverflow = b.metrics.breakerRejections.labels(cluster.name, 'retries');
  const retriesOpen = b.metrics.breakerOpen.labels(cluster.name, 'retries');
  const clock = b.clock;
  clusterScrapeHooks(cluster, b.metrics).set('retries', () => {
    retriesOpen.set(mayRetry(clock.now()) ? 0 : 1);
  });

  function mayRetry(now: number): boolean {
    return budgetOn ? budget.allows(window, cluster.activeRetries, now) : cluster.activeRetries < fixedMaxRetries;
  }

  function retriable(outcome: Outcome, ctx: RequestContext): boolean {
    if (outcome.kind === 'local') {
      switch (outcome.reason) {
        case 'upstream_connect_failure':
          return onConnectFailure;
        case 'upstream_reset':
          return onReset;
        case 'upstream_timeout':
          // Only a per-try timeout: when the route deadline itself passed there is no time left.
          return onTimeout && ctx.clock.now() < ctx.deadline;
        default:
          // Rejections (circuit_open, overloaded, ...) and client_closed are never retried.
          return false;
      }
    }
    const s = outcome.status;
    return (onGatewayError && (s === 502 || s === 503 || s === 504)) || retriableStatuses.has(s);
  }

  function mayReplay(ctx: RequestContext): boolean {
    if (!ctx.requestSent) return true;
    if (!ctx.request.replayable) return false;
    return ctx.request.idempotent || !idempotentOnly;
  }

  /** Pause before retry number n (1-based): Retry-After when given, else jittered backoff; undefined: do not retry. */
  function pauseBefore(n: number, outcome: Outcome, ctx: RequestContext, now: number): number | undefined {
    let pause: number;
    const retryAfter = outcome.kind === 'upstream' && (outcome.status === 429 || outcome.status === 503) ? outcome.header('retry-after') : undefined;
    const honoured = retryAfter === undefined ? undefined : parseRetryAfter(retryAfter, wallClock());
    if (honoured !== undefined) pause = honoured;
    else pause = random() * Math.min(backoffMax, backoffBase * 2 ** (n - 1));
    return now + pause < ctx.deadline ? pause : undefined;
  }

  return (next) => async (ctx) => {
    let retry = 0;
    let holdsRetry = false;
    window.recordFirstTry(ctx.clock.now());
    try {
      for (;;) {
        const start = ctx.clock.now();
        ctx.attemptDeadline = perTryTimeout === undefined ? ctx.deadline : Math.min(start + perTryTimeout, ctx.deadline);
        const outcome = await next(ctx);
        if (holdsRetry) {
          holdsRetry = false;
          cluster.activeRetries--;
        }
        if (retry >= maxRetries || ctx.aborted || !retriable(outcome, ctx) || !mayReplay(ctx)) return outcome;
        const now = ctx.clock.now();
        const pause = pauseBefore(retry + 1, outcome, ctx, now);
        if (pause === undefined) return outcome;
        if (!mayRetry(now)) {
          if (budgetOn) budgetExhausted.inc();
          else retryOverflow.inc();
          return outcome;
        }
        window.recordRetry(now);
        cluster.activeRetries++;
        holdsRetry = true;
        retry++;
        if (outcome.kind === 'upstream') {
          if (!ctx.failedEndpoints.includes(outcome.endpoint)) ctx.failedEndpoints.push(outcome.endpoint);
          outcome.discard();
        }
        if (pause > 0 && !(await sleep(ctx, pause))) {
          ctx.reason = 'client_closed';
          return CLIENT_CLOSED;
        }
        if (ctx.aborted) return CLIENT_CLOSED;
        retries.inc();
      }
    } finally {
      if (holdsRetry) cluster.activeRetries--;
    }
  };
}

/**
 * Retry-After (RFC 9110, 10.2.3) as milliseconds from now: delay-seconds or an HTTP-date;
 * undefined when malformed. A date in the past means "now".
 */
export function parseRetryAfter(value: string, wallNow: number): number | undefined {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - wallNow);
}
