// The per-attempt policy feeding outlier detection (proxy/src/upstream/outlier.ts): it wraps
// each upstream attempt, classifies the outcome and updates the endpoint's counters. The
// ejection itself is a gate the balancer reads; nothing here delays the request.
import { outlierDetectorOf, type AttemptResult } from '../upstream/outlier.js';
import type { Outcome, Policy, PolicyBuildContext } from './types.js';

export function buildOutlier(b: PolicyBuildContext): Policy | undefined {
  if (!b.cluster.config.outlierDetection.enabled) return undefined;
  const detector = outlierDetectorOf(b.cluster, b.metrics);
  return (next) => async (ctx) => {
    const outcome = await next(ctx);
    const ep = outcome.endpoint;
    if (ep) detector.record(ep, attemptResult(outcome), ctx.clock.now());
    return outcome;
  };
}

/** 5xx, connect failures, resets and timeouts count against an endpoint; rejections and client aborts do not. */
export function attemptResult(outcome: Outcome): AttemptResult {
  if (outcome.kind === 'upstream') return outcome.status >= 500 ? 'failure' : 'success';
  switch (outcome.reason) {
    case 'upstream_connect_failure':
    case 'upstream_reset':
    case 'upstream_timeout':
      return 'failure';
    default:
      return 'neutral';
  }
}
