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

  return (next) => {
    const admitted = async (ctx: RequestContext): Promise<Outcome> => {
      cluster.activeRequests++;
      try {
        return await next(ctx);
      } finally {
        cluster.activeRequests--;
      }
    };
    return (ctx) => {
      if (cluster.activeRequests >= maxRequests) {
        ctx.reason = 'circuit_open';
        rejections.inc();
        return open;
      }
      return admitted(ctx);
    };
  };
}
