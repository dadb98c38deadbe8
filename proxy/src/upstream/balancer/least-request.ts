// Least request with the power of two choices: two random candidates, the one with fewer
// attempts in flight wins. Nearly as good as a full scan, O(1), and free of the herd effect a
// global minimum has when many proxies see the same counts.
import type { EndpointState } from '../endpoint.js';
import { candidates, twoChoices, type Balancer } from './balancer.js';

export class LeastRequestBalancer implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  pick(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): EndpointState | undefined {
    const pool = candidates(endpoints, failed, now);
    if (pool.length <= 1) return pool[0];
    const [a, b] = twoChoices(pool.length, this.random);
    const ea = pool[a]!;
    const eb = pool[b]!;
    return eb.outstanding < ea.outstanding ? eb : ea;
  }
}
