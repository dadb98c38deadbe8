// The control plane's own metrics (its own registry, apart from any proxy's), on /metrics.
// Documented in docs/metrics.md ("Control plane"), generated from this registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectRuntimeMetrics } from '../../proxy/src/telemetry/metrics.js';

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly connectedProxies: Gauge;
  readonly pushes: Counter;
  readonly acks: Counter;
  readonly nacks: Counter;
  readonly applyToAck: Histogram;
  readonly applies: Counter<'result'>;
  readonly authFailures: Counter<'api'>;

  constructor() {
    const registers = [this.registry];
    this.connectedProxies = new Gauge({ name: 'tsmesh_cp_connected_proxies', help: 'Proxy streams connected to this replica.', registers });
    this.pushes = new Counter({ name: 'tsmesh_cp_pushes_total', help: 'Snapshots sent to proxies.', registers });
    this.acks = new Counter({ name: 'tsmesh_cp_acks_total', help: 'Snapshots proxies ACKed.', registers });
    this.nacks = new Counter({ name: 'tsmesh_cp_nacks_total', help: 'Snapshots proxies NACKed (refused).', registers });
    this.applyToAck = new Histogram({
      name: 'tsmesh_cp_apply_to_ack_seconds',
      help: 'Time from a revision being stored to a proxy ACKing it (per proxy).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
    this.applies = new Counter({ name: 'tsmesh_cp_applies_total', help: 'Applies and rollbacks, by result (stored, invalid).', labelNames: ['result'], registers });
    this.authFailures = new Counter({ name: 'tsmesh_cp_auth_failures_total', help: 'Requests refused for a missing or wrong token, by api (grpc, http).', labelNames: ['api'], registers });
    // prom-client's defaults without its `*_total` gauges, which promtool rejects (as the proxy's).
    collectRuntimeMetrics(this.registry, 'tsmesh_cp_');
  }
}
