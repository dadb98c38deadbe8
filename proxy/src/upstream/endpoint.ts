// One upstream endpoint's state: shared by the balancer (reads), the outlier detector and
// health checker (write the gates) and the pool. It is keyed by address inside its cluster's
// state, so it survives config swaps while the endpoint stays in the cluster.
import { parseHostPort } from '../config/units.js';
import type { EndpointStats } from '../telemetry/hot-stats.js';

export class EndpointState {
  readonly host: string;
  readonly port: number;

  /** Attempts in flight to this endpoint (least-request, peak-EWMA cost). */
  outstanding = 0;

  /** Peak-EWMA round-trip estimate in ms and when it was last updated (clock time). */
  rttEstimate = 0;
  rttUpdatedAt = 0;

  /** Outlier detection: failures in a row, ejection gate, times ejected so far. */
  consecutiveFailures = 0;
  ejectedUntil = 0;
  ejections = 0;
  /** After an ejection ends, one probe request decides whether the endpoint is back. */
  probing = false;
  probeInFlight = false;

  /** Active health checking; true until a checker says otherwise. */
  healthy = true;

  /** Attempts by result, for the metrics; set by the cluster's dispatch on the first attempt (no lookup per attempt). */
  attemptStats: EndpointStats | undefined = undefined;

  constructor(readonly address: string) {
    const hp = parseHostPort(address);
    if (!hp) throw new Error(`invalid endpoint address ${address}`);
    this.host = hp.host;
    this.port = hp.port;
  }

  /**
   * The balancer (or the upstream handler) calls this for the endpoint it sends an attempt to.
   * While the endpoint is probing after an ejection, that attempt is the single probe: the gate
   * closes for everyone else until the outlier detector has its verdict.
   */
  picked(): void {
    if (this.probing) this.probeInFlight = true;
  }

  /** Whether the balancer may send a new request here now (ejection and health gates). */
  available(now: number): boolean {
    if (!this.healthy) return false;
    if (this.ejectedUntil > now) return false;
    return !(this.probing && this.probeInFlight);
  }
}
