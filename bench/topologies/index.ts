// The topologies the ladder can run, by name. Phase 2 adds `tsmesh` (edge + sidecars) here.
import { startNginxTopology } from './nginx.js';
import type { StartTopology } from './types.js';

export const TOPOLOGIES: Readonly<Record<string, StartTopology>> = {
  nginx: startNginxTopology,
};

export { startBacking, type RunningBacking } from './backing.js';
export { startGatewayFleet, type GatewayFleet, type GatewayProcess } from './gateways.js';
export { startNginxTopology, nginxConfig, type NginxOptions } from './nginx.js';
export type { BackingServices, StartTopology, Topology, TopologyOptions } from './types.js';
