// The per-attempt policy feeding outlier detection (proxy/src/upstream/outlier.ts): it wraps
// each upstream attempt, classifies the outcome and updates the endpoint's counters. The
// ejection itself is a gate the balancer reads; nothing here delays the request.
import { outlierDetectorOf, type AttemptResult } from '../upstream/outlier.js';
import type { Outcome, Policy, PolicyBuildContext } from './types.js';

export function buildOutlier(b: PolicyBuildContext): Policy | undefined {
  if (!b.cluster.config.outlierDetection.enabled) return undefined;
  const detector = outlierDetectorOf(b.cluster, b.metrics);
  const clock = b.clock;
  // Observes the attempt's promise and hands it up unchanged (no async frame, no extra hop for
  // the layers above; see breaker.ts). The observer is bound once per snapshot, not per request.
  const observe = (outcome: Outcome): void => {
    const ep = outcome.endpoint;
    if (ep) detector.recordWith(ep, attemptResult(outcome), clock);
  };
  return (next) => (ctx) => {
    const p = next(ctx);
    p.then(observe, noop);
    return p;
  };
}

function noop(): void {}

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
