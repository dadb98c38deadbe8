// The mesh's topology: N gateway instances each behind its own tsmesh sidecar, the tsmesh
// edge in front of the sidecars, the control plane holding their config; on the shared real
// PostgreSQL and Redis. Started by the demo's own code (examples/demo/mesh.ts, what `npm
// start` runs), with the documents of examples/deploy/mesh/ as they are, except what a
// benchmark must not pay for: the edge's access log.
//
// sample() reads what the proxies counted themselves from their /metrics: rejections by
// reason at the edge and at the sidecars, the edge's retries, spent retry budget, ejections,
// the sidecars' concurrency limits at the end of the step, the edge's event-loop delay, and the
// CPU time of the edge and of the sidecars.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh, type RunningMesh } from '../../examples/demo/mesh.js';
import { parsePromText, type Sample } from '../../proxy/src/telemetry/prom-text.js';
import type { StartTopology, Topology, TopologyOptions } from './types.js';

export interface TsmeshOptions extends TopologyOptions {
  /** Merged into the edge's / every sidecar's document (examples/demo/documents.ts mergeDocument). */
  readonly edgePatch?: unknown;
  readonly sidecarPatch?: unknown;
}

/** What the benchmark changes in examples/deploy/mesh/edge.yaml: no access log on stdout. */
export const BENCH_EDGE_PATCH = { accessLog: { enabled: false } };

async function scrape(adminUrl: string): Promise<Sample[]> {
  const r = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parsePromText(await r.text()).samples;
}

/** Counters of one proxy worth reporting, as "what: value" keys. */
function counters(samples: readonly Sample[], role: 'edge' | 'sidecars'): Map<string, number> {
  const out = new Map<string, number>();
  const add = (key: string, v: number) => out.set(key, (out.get(key) ?? 0) + v);
  for (const s of samples) {
    switch (s.name) {
      case 'tsmesh_requests_total':
        if (s.labels.reason && s.labels.reason !== 'none') add(`${role} ${s.labels.reason} ${s.labels.code}`, s.value);
        break;
      case 'tsmesh_retries_total':
        add(`${role} retries`, s.value);
        break;
      case 'tsmesh_retry_budget_exhausted_total':
        add(`${role} retry budget spent`, s.value);
        break;
      case 'tsmesh_outlier_ejections_total':
        add(`${role} ejections`, s.value);
        break;
      case 'tsmesh_circuit_breaker_rejections_total':
        add(`${role} breaker ${s.labels.resource}`, s.value);
        break;
      case 'tsmesh_downstream_connections_overflow_total':
        add(`${role} connections over limit`, s.value);
        break;
      case 'tsmesh_upstream_connect_failures_total':
        add(`${role} connect failures`, s.value);
        break;
      // The step's CPU (with the pause before it): where the two cores went.
      case 'tsmesh_process_cpu_seconds_total':
        add(`${role} CPU ms`, Math.round(s.value * 1000));
        break;
    }
  }
  return out;
}

export const startTsmeshTopology: StartTopology = async (opts: TsmeshOptions): Promise<Topology> => {
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-mesh-'));
  let mesh: RunningMesh;
  try {
    mesh = await startMesh({
      instances: opts.instances,
      edgeAddress: '127.0.0.1:0',
      edgeAdminAddress: '127.0.0.1:0',
      controlPlaneGrpc: '127.0.0.1:0',
      controlPlaneHttp: '127.0.0.1:0',
      dataDir: dir,
      databaseUrl: opts.backing.databaseUrl,
      redisUrl: opts.backing.redisUrl,
      seedDocuments: opts.seedDocuments,
      edgePatch: opts.edgePatch ?? BENCH_EDGE_PATCH,
      sidecarPatch: opts.sidecarPatch,
      // Problems only: a process's stderr.
      output: (name, stream, line) => {
        if (stream === 'stderr' && line.trim()) log(`${name}: ${line}`);
      },
      onUnexpectedExit: (p, code, signal) => log(`${p.name} exited on its own (${code ?? signal})`),
      log,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  log(`edge ${mesh.edgeUrl} -> sidecars ${mesh.instances.map((i) => new URL(i.sidecarUrl).port).join(', ')} -> gateways ${mesh.instances.map((i) => new URL(i.appUrl).port).join(', ')}`);

  let previous = new Map<string, number>();
  const sample = async (): Promise<Record<string, number>> => {
    const now = new Map<string, number>();
    const limits: number[] = [];
    const edgeLoop: Record<string, number> = {};
    const read = async (url: string, role: 'edge' | 'sidecars') => {
      const samples = await scrape(url);
      for (const [k, v] of counters(samples, role)) now.set(k, (now.get(k) ?? 0) + v);
      if (role === 'sidecars') for (const s of samples) if (s.name === 'tsmesh_concurrency_limit') limits.push(s.value);
      // prom-client resets its event-loop delay histogram at every scrape, so these cover the
      // step (and the pause before it): how long a request the edge answers at once can wait
      // in the edge before it is read.
      if (role === 'edge')
        for (const s of samples) {
          if (s.name === 'tsmesh_nodejs_eventloop_lag_p99_seconds') edgeLoop['edge loop delay p99 ms'] = Math.round(s.value * 1000);
          if (s.name === 'tsmesh_nodejs_eventloop_lag_max_seconds') edgeLoop['edge loop delay max ms'] = Math.round(s.value * 1000);
        }
    };
    try {
      await Promise.all([read(mesh.edgeAdminUrl, 'edge'), ...mesh.instances.map((i) => read(i.adminUrl, 'sidecars'))]);
    } catch (err) {
      log(`reading the proxies' metrics failed: ${(err as Error).message}`);
      return {};
    }
    const out: Record<string, number> = {};
    for (const [k, v] of now) {
      const d = v - (previous.get(k) ?? 0);
      if (d > 0) out[k] = d;
    }
    previous = now;
    // A gauge, not a count: where the adaptive limits ended the step.
    if (limits.length) out['sidecar limits (sum)'] = Math.round(limits.reduce((a, b) => a + b, 0));
    return { ...out, ...edgeLoop };
  };

  return {
    name: 'tsmesh',
    url: mesh.edgeUrl,
    description:
      `${opts.instances} gateway instances, each behind a tsmesh sidecar, behind the tsmesh edge; config from the control plane ` +
      '(examples/deploy/mesh/edge.yaml and gateway-sidecars.yaml, one sidecar document per instance; edge access log off)',
    sample,
    stop: async () => {
      await mesh.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};
