// Outlier detection (passive health checking), after Envoy's consecutive-5xx detector and
// Linkerd's failure accrual with a single probe:
//
// - Each attempt's result is a counter update on its endpoint: a success resets the count of
//   consecutive failures (5xx, connect failure, reset, timeout); at `consecutiveFailures` the
//   endpoint is ejected for baseEjectionTime x times ejected, capped at maxEjectionTime (the
//   multiplier stops growing at the cap, as in Envoy).
// - Never more than maxEjectionPercent of the cluster's endpoints are ejected at once; an
//   outlier found past that stays in (Envoy ejects one more than the percentage allows; we do
//   not, so a 3-endpoint cluster at 50 % ejects at most one).
// - When the ejection time is over, the endpoint does not get its full share back at once: it
//   is `probing`, and the first attempt the balancer sends there (EndpointState.picked()) is
//   the only one until it is answered. Probe success: the endpoint is back. Probe failure:
//   ejected again, for longer.
// - The multiplier decays: for every baseEjectionTime an endpoint stays back without being
//   ejected, one ejection is forgotten (Envoy decrements it on each quiet `interval`).
//
// Nothing here runs on a timer and the request path only reads a gate
// (EndpointState.available(now)); the detector is per cluster and kept across config swaps.
import type { Clock } from '../clock.js';
import type { OutlierDetectionConfig } from '../config/schema.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { ClusterState } from './cluster-state.js';
import type { EndpointState } from './endpoint.js';

export type AttemptResult = 'success' | 'failure' | 'neutral';

export class OutlierDetector {
  private consecutive = 5;
  private baseMs = 30_000;
  private maxMs = 300_000;
  private maxPercent = 50;
  /** When an endpoint last came back from an ejection, for the multiplier's decay. */
  private readonly returnedAt = new WeakMap<EndpointState, number>();

  constructor(
    private readonly cluster: ClusterState,
    private readonly metrics: ProxyMetrics | undefined,
    config: OutlierDetectionConfig = cluster.config.outlierDetection,
  ) {
    this.configure(config);
  }

  configure(config: OutlierDetectionConfig): void {
    this.consecutive = config.consecutiveFailures;
    this.baseMs = config.baseEjectionTime;
    this.maxMs = Math.max(config.maxEjectionTime, config.baseEjectionTime);
    this.maxPercent = config.maxEjectionPercent;
  }

  /** Learns from one attempt's result on an endpoint. */
  /** record() reading the clock only when the answer needs the time (not for a plain success). */
  recordWith(ep: EndpointState, result: AttemptResult, clock: Clock): void {
    if (result === 'success' && !ep.probing) ep.consecutiveFailures = 0;
    else this.record(ep, result, clock.now());
  }

  record(ep: EndpointState, result: AttemptResult, now: number): void {
    if (ep.probing) {
      // Answers to requests sent before the ejection tell nothing new.
      if (ep.ejectedUntil > now) return;
      if (result === 'neutral') {
        ep.probeInFlight = false;
      } else if (result === 'success') {
        this.readmit(ep, now);
      } else if (!this.eject(ep, now)) {
        // Too many others are out: it stays on probation, one request at a time.
        ep.probeInFlight = false;
      }
      return;
    }
    if (result === 'success') {
      ep.consecutiveFailures = 0;
    } else if (result === 'failure') {
      ep.consecutiveFailures++;
      if (ep.consecutiveFailures >= this.consecutive) this.eject(ep, now);
    }
  }

  /** How many of the cluster's endpoints are ejected at this moment. */
  ejectedCount(now: number): number {
    let n = 0;
    for (const e of this.cluster.endpoints) if (e.ejectedUntil > now) n++;
    return n;
  }

  private eject(ep: EndpointState, now: number): boolean {
    const endpoints = this.cluster.endpoints;
    if (endpoints.length === 0 || ((this.ejectedCount(now) + 1) * 100) / endpoints.length > this.maxPercent) return false;
    const returned = this.returnedAt.get(ep);
    if (returned !== undefined) {
      ep.ejections = Math.max(0, ep.ejections - Math.floor((now - returned) / this.baseMs));
      this.returnedAt.delete(ep);
    }
    if (this.baseMs * ep.ejections < this.maxMs) ep.ejections++;
    ep.ejectedUntil = now + Math.min(this.baseMs * ep.ejections, this.maxMs);
    ep.probing = true;
    ep.probeInFlight = false;
    ep.consecutiveFailures = 0;
    if (this.metrics) {
      this.metrics.outlierEjections.labels(this.cluster.name, ep.address).inc();
      this.metrics.endpointEjected.labels(this.cluster.name, ep.address).set(1);
    }
    return true;
  }

  private readmit(ep: EndpointState, now: number): void {
    ep.probing = false;
    ep.probeInFlight = false;
    ep.consecutiveFailures = 0;
    this.returnedAt.set(ep, now);
    this.metrics?.endpointEjected.labels(this.cluster.name, ep.address).set(0);
  }
}

/** The cluster's detector, created on first use and kept across config swaps. */
export function outlierDetectorOf(cluster: ClusterState, metrics: ProxyMetrics | undefined): OutlierDetector {
  const d = cluster.stateOf('outlier', () => new OutlierDetector(cluster, metrics));
  d.configure(cluster.config.outlierDetection);
  return d;
}
