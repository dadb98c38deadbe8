import type { EndpointState } from '../endpoint.js';
import { candidates, type Balancer } from './balancer.js';

export class RoundRobinBalancer implements Balancer {
  private next = 0;

  pick(endpoints: readonly EndpointState[], failed: readonly EndpointState[], now: number): EndpointState | undefined {
    const pool = candidates(endpoints, failed, now);
    if (pool.length === 0) return undefined;
    const i = this.next++ % pool.length;
    if (this.next >= 0x3fffffff) this.next = 0;
    return pool[i];
  }
}
