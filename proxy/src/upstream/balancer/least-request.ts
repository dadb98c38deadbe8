// Least request with the power of two choices: two random candidates, the one with fewer
// attempts in flight wins. Nearly as good as a full scan, O(1), and free of the herd effect a
// global minimum has when many proxies see the same counts.
import type { EndpointState } from '../endpoint.js';
import { pickOfTwo, type Balancer } from './balancer.js';

const inFlight = (ep: EndpointState): number => ep.outstanding;

export class LeastRequestBalancer implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  pick(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): EndpointState | undefined {
    return pickOfTwo(endpoints, failed, now, this.random, inFlight);
  }
}
