// N example gateway instances, each its own `tsmesh gateway` process on a free loopback
// port (separate processes like the original system's containers, and off the process that
// runs the benchmark). Spawned like the demo's (examples/demo/processes.ts), so both
// topologies run the same gateways the same way.
import { MeshProcess } from '../../examples/demo/processes.js';
import type { BackingServices } from './types.js';

export interface GatewayProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
}

export interface GatewayFleet {
  readonly instances: readonly GatewayProcess[];
  stop(): Promise<void>;
}

function listeningUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const rec = JSON.parse(line) as { msg?: string; url?: string };
    return rec.msg === 'listening' && rec.url ? rec.url : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `count` instances at once (their migrations serialise on an advisory lock). */
export async function startGatewayFleet(count: number, backing: BackingServices, seedDocuments?: number): Promise<GatewayFleet> {
  const procs = Array.from({ length: count }, (_, i) => {
    const args = ['gateway', '--listen', '127.0.0.1:0', '--database-url', backing.databaseUrl, '--redis-url', backing.redisUrl, '--name', `gateway-${i + 1}`];
    if (seedDocuments !== undefined) args.push('--seed-documents', String(seedDocuments));
    return new MeshProcess({ name: `gateway-${i + 1}`, args }, () => {});
  });
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop(15_000)));
  };
  const settled = await Promise.allSettled(procs.map((p) => p.waitForLine((l) => listeningUrl(l), 60_000, 'listening line')));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return {
    instances: settled.map((s, i) => {
      const url = (s as PromiseFulfilledResult<string>).value;
      return { url, port: Number(new URL(url).port), pid: procs[i]!.pid };
    }),
    stop,
  };
}
