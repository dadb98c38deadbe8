import type { LoadBalancerKind } from '../../config/schema.js';
import type { ClusterState } from '../cluster-state.js';
import type { Balancer } from './balancer.js';
import { LeastRequestBalancer } from './least-request.js';
import { PeakEwmaBalancer } from './peak-ewma.js';
import { RoundRobinBalancer } from './round-robin.js';

export type { Balancer } from './balancer.js';

export function createBalancer(kind: LoadBalancerKind, random: () => number = Math.random): Balancer {
  switch (kind) {
    case 'round-robin':
      return new RoundRobinBalancer();
    case 'least-request':
      return new LeastRequestBalancer(random);
    case 'peak-ewma':
      return new PeakEwmaBalancer(random);
  }
}

/** The cluster's balancer, kept across config swaps while its kind stays the same. */
export function balancerFor(cluster: ClusterState): Balancer {
  const kind = cluster.config.loadBalancer;
  return cluster.stateOf<Balancer>(`balancer:${kind}`, () => createBalancer(kind));
}
