// The scrape hooks a cluster's policies set (ProxyMetrics.setScrapeHook: live state copied
// into gauges at scrape time), kept in the cluster's state so that they go away with the
// cluster. Without this, a removed cluster's hooks would keep its state (endpoints, limiter,
// queue) reachable and keep exporting its last gauge values for the life of the process.
// ClusterRegistry.sync releases a removed cluster, which disposes this state.
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { ClusterState } from '../upstream/cluster-state.js';
import type { DisposableState } from './state-store.js';

export class ClusterScrapeHooks implements DisposableState {
  private readonly metrics: ProxyMetrics;
  private readonly clusterName: string;
  /** The hook this cluster state last set under each key. */
  private readonly hooks = new Map<string, () => void>();

  constructor(metrics: ProxyMetrics, clusterName: string) {
    this.metrics = metrics;
    this.clusterName = clusterName;
  }

  /** Sets (or with undefined removes) the hook of one policy, under "<policy>:<cluster>". */
  set(policy: string, fn: (() => void) | undefined): void {
    const key = `${policy}:${this.clusterName}`;
    this.metrics.setScrapeHook(key, fn);
    if (fn) this.hooks.set(key, fn);
    else this.hooks.delete(key);
  }

  /** Removes this cluster's hooks (only those still its own) and the gauge series they wrote. */
  dispose(): void {
    for (const [key, fn] of this.hooks) this.metrics.removeScrapeHook(key, fn);
    this.hooks.clear();
    this.metrics.removeClusterGauges(this.clusterName);
  }
}

/** The cluster's hooks, created on first use and kept across config swaps. */
export function clusterScrapeHooks(cluster: ClusterState, metrics: ProxyMetrics): ClusterScrapeHooks {
  return cluster.stateOf('scrape-hooks', () => new ClusterScrapeHooks(metrics, cluster.name));
}
