// The topologies the ladder can run, by name.
import { startNginxTopology } from './nginx.js';
import { startTsmeshTopology } from './tsmesh.js';
import type { StartTopology } from './types.js';

export const TOPOLOGIES: Readonly<Record<string, StartTopology>> = {
  nginx: startNginxTopology,
  tsmesh: startTsmeshTopology,
};

export { startBacking, type RunningBacking } from './backing.js';
export { startGatewayFleet, type GatewayFleet, type GatewayProcess } from './gateways.js';
export { startNginxTopology, nginxConfig, type NginxOptions } from './nginx.js';
export { startTsmeshTopology, BENCH_EDGE_PATCH, type TsmeshOptions } from './tsmesh.js';
export type { BackingServices, StartTopology, Topology, TopologyOptions } from './types.js';
