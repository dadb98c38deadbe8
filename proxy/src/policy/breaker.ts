// Circuit breaker on the cluster's active requests (Envoy's `max_requests` threshold): past it
// the request is answered 503 circuit_open at once instead of joining a pile the upstream
// cannot finish. Envoy's other thresholds are enforced elsewhere: connections and pending
// requests by the core's pool, retries by the retry policy.
//
// Like Envoy (and unlike cockatiel's CircuitBreakerPolicy, which opens after consecutive or
// sampled failures and half-opens after a delay), this breaker has no open/half-open cycle: it
// is a resource cap that "opens" exactly while the resource is at its threshold. Learning from
// failures is the outlier detector's job, per endpoint, with its own single-probe return.
//
// The circuitBreaker block has defaults (1024/1024/1024/3), so this policy always runs.
import type { Outcome, Policy, PolicyBuildContext, RequestContext } from './types.js';
import { localResponse } from './types.js';
import { clusterScrapeHooks } from './scrape-hooks.js';

export function buildBreaker(b: PolicyBuildContext): Policy {
  const cluster = b.cluster;
  const name = cluster.name;
  const maxRequests = cluster.config.circuitBreaker.maxRequests;
  const rejections = b.metrics.breakerRejections.labels(name, 'requests');
  const openGauge = b.metrics.breakerOpen.labels(name, 'requests');
  clusterScrapeHooks(cluster, b.metrics).set('breaker', () => {
    openGauge.set(cluster.activeRequests >= maxRequests ? 1 : 0);
  });

  // One answer object and one settled promise for every rejection: nothing is allocated to say no.
  const open = Promise.resolve<Outcome>(localResponse('circuit_open', 503, { detail: `cluster ${name} has ${maxRequests} active requests` }));

  // An admitted request is released when the promise of the rest of the chain settles. The
  // reaction is registered on that promise, which is handed up unchanged: no async frame and no
  // extra promise hop for the layers above (an async wrapper with try/finally cost ~0.4 us per
  // request in bench:hotpath --policies; this shape about a third of that).
  const release = (): void => {
    cluster.activeRequests--;
  };
  return (next) => (ctx: RequestContext): Promise<Outcome> => {
    if (cluster.activeRequests >= maxRequests) {
      ctx.reason = 'circuit_open';
      rejections.inc();
      return open;
    }
    cluster.activeRequests++;
    let p: Promise<Outcome>;
    try {
      p = next(ctx);
    } catch (err) {
      cluster.activeRequests--;
      return Promise.reject(err);
    }
    p.then(release, release);
    return p;
  };
}
