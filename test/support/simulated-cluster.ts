// A simulated bottom handler and an open-model load on fake time, for running the whole
// resilience chain at unit scale (proxy/src/policy/chain.test.ts) and for printing the
// retry-budget figures of docs/policies.md (bench/retry-budget.ts). The handler does what the
// core's upstream handler is specified to do: pick an available endpoint that has not failed
// this request, panic to all when none is, call picked(), honour the attempt deadline, count
// attempts.
import { ATTEMPT_POLICIES, REQUEST_POLICIES } from '../../proxy/src/policy/chain.js';
import { buildRetry, createRetryPolicy } from '../../proxy/src/policy/retry.js';
import { compose, type Handler, type Outcome, type PolicyBuildContext, type RequestContext } from '../../proxy/src/policy/types.js';
import type { EndpointState } from '../../proxy/src/upstream/endpoint.js';
import { failure, type Harness, upstreamResponse } from './policy-fixtures.js';

/**
 * The resilience chain in its documented order (chain.ts) over `bottom`, with the retry
 * backoff's jitter drawn from `random`, so that a run on fake time repeats exactly.
 */
export function seededResilienceChain(b: PolicyBuildContext, bottom: Handler, random: () => number): Handler {
  const request = REQUEST_POLICIES.map((build) => (build === buildRetry ? createRetryPolicy(b, { random }) : build(b)));
  return compose([...request, ...ATTEMPT_POLICIES.map((build) => build(b))], bottom);
}

export type Behaviour = (ep: EndpointState, ctx: RequestContext) => { latency: number; answer: 'ok' | 'connect-failure' | number };

export function simulatedUpstream(h: Harness, behave: Behaviour): { handler: Handler; attempts: () => number } {
  let rr = 0;
  let attempts = 0;
  const handler: Handler = (ctx) => {
    attempts++;
    ctx.attempts++;
    const now = ctx.clock.now();
    const all = h.cluster.endpoints;
    let candidates = all.filter((e) => e.available(now) && !ctx.failedEndpoints.includes(e));
    if (candidates.length === 0) candidates = all.filter((e) => e.available(now));
    if (candidates.length === 0) candidates = all;
    const ep = candidates[rr++ % candidates.length]!;
    ep.picked();
    ep.outstanding++;
    const { latency, answer } = behave(ep, ctx);
    const timeout = ctx.attemptDeadline - now;
    return new Promise<Outcome>((resolve) => {
      ctx.clock.setTimer(
        () => {
          ep.outstanding--;
          let o: Outcome;
          if (latency >= timeout) o = failure('upstream_timeout', ep);
          else if (answer === 'connect-failure') o = failure('upstream_connect_failure', ep);
          else {
            ctx.requestSent = true;
            o = upstreamResponse(answer === 'ok' ? 200 : answer, ep);
          }
          if (o.kind === 'local' && !ctx.failedEndpoints.includes(ep)) ctx.failedEndpoints.push(ep);
          resolve(o);
        },
        Math.min(latency, timeout),
      );
    });
  };
  return { handler, attempts: () => attempts };
}

/**
 * Steady open-model load: `perMs` new requests per ms (fractions accumulate, so 0.1 is one
 * request every 10 ms) for `ms`, then waits for all of them; `observe` runs after every
 * millisecond of load and every 5 ms of the wait.
 */
export async function openLoad(h: Harness, handler: Handler, perMs: number, ms: number, observe?: () => void): Promise<Outcome[]> {
  const pending: Promise<Outcome>[] = [];
  let due = 0;
  for (let t = 0; t < ms; t++) {
    due += perMs;
    for (; due >= 1; due--) pending.push(handler(h.ctx()));
    await h.clock.tick(1);
    observe?.();
  }
  for (let t = 0; t < 5000; t += 5) {
    await h.clock.tick(5);
    observe?.();
  }
  return Promise.all(pending);
}
