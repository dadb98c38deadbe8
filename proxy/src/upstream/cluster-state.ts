// A cluster's state that outlives config snapshots: endpoints (by address), resource
// counters for the circuit breaker, and slots where policies keep what they learned
// (limiter estimate, ejections, health). A new snapshot takes the state of the same name
// and updates its config; endpoints that stay keep their history. A cluster that leaves the
// config is released: policy state holding something outside the cluster (scrape hooks) is
// disposed.
import type { ClusterConfig } from '../config/schema.js';
import { disposeState } from '../policy/state-store.js';
import { EndpointState } from './endpoint.js';

export class ClusterState {
  config: ClusterConfig;
  endpoints: EndpointState[] = [];
  private readonly byAddress = new Map<string, EndpointState>();

  /** Circuit-breaker resources (Envoy's four thresholds). */
  activeRequests = 0;
  pendingRequests = 0;
  connections = 0;
  activeRetries = 0;

  /** Per-policy state that must survive a swap, keyed by policy name (e.g. "concurrency"). */
  readonly policyState = new Map<string, unknown>();

  constructor(config: ClusterConfig) {
    this.config = config;
    this.update(config);
  }

  get name(): string {
    return this.config.name;
  }

  /** Applies a new config of this cluster; endpoints still listed keep their state. */
  update(config: ClusterConfig): void {
    this.config = config;
    const next: EndpointState[] = [];
    for (const address of new Set(config.endpoints)) {
      let ep = this.byAddress.get(address);
      if (!ep) {
        ep = new EndpointState(address);
        this.byAddress.set(address, ep);
      }
      next.push(ep);
    }
    for (const address of [...this.byAddress.keys()]) if (!config.endpoints.includes(address)) this.byAddress.delete(address);
    this.endpoints = next;
  }

  endpoint(address: string): EndpointState | undefined {
    return this.byAddress.get(address);
  }

  /** State of one policy for this cluster, created on first use and kept across swaps. */
  stateOf<T>(policy: string, create: () => T): T {
    let s = this.policyState.get(policy) as T | undefined;
    if (s === undefined) {
      s = create();
      this.policyState.set(policy, s);
    }
    return s;
  }

  /**
   * The cluster left the config: disposes the policy states that hold something outside it
   * (DisposableState, e.g. its metric scrape hooks). Counters and learned state stay readable
   * for requests still finishing on the old snapshot. ClusterRegistry.sync calls it.
   */
  release(): void {
    for (const s of this.policyState.values()) disposeState(s);
  }
}

/** All clusters' state of one proxy, by name. */
export class ClusterRegistry {
  private readonly clusters = new Map<string, ClusterState>();

  /**
   * Returns the state for each configured cluster (creating or updating), dropping and
   * releasing the rest. The runtime calls it on every applied config, before building the new
   * snapshot's policies.
   */
  sync(configs: readonly ClusterConfig[]): Map<string, ClusterState> {
    const out = new Map<string, ClusterState>();
    for (const c of configs) {
      let s = this.clusters.get(c.name);
      if (s) s.update(c);
      else s = new ClusterState(c);
      out.set(c.name, s);
    }
    for (const [name, s] of [...this.clusters]) {
      if (out.has(name)) continue;
      this.clusters.delete(name);
      s.release();
    }
    for (const [name, s] of out) this.clusters.set(name, s);
    return out;
  }

  get(name: string): ClusterState | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<ClusterState> {
    return this.clusters.values();
  }
}
