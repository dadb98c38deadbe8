// The whole mesh on one host, as processes: PostgreSQL (embedded unless a URL is given), the
// control plane, N gateway instances each with a tsmesh sidecar in front of it, and the tsmesh
// edge in front of the sidecars. `tsmesh demo` (npm start) and the ladder's `tsmesh` topology
// both start it with this one function.
//
// The proxies never see a config file with listeners: they start from bootstrap files (admin
// address + control plane) and the config comes from the control plane, applied through its
// HTTP API exactly as `tsmesh apply` does, before the proxies connect.
//
//   start: ports checked → PostgreSQL → control plane ∥ gateways → apply documents →
//          sidecars ∥ edge → every proxy ACKed the applied version → the edge answers /health
//   stop:  edge (drains) → sidecars → gateways → control plane → PostgreSQL
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ApiClient } from '../../control-plane/src/api/client.js';
import { parseHostPort } from '../../proxy/src/config/units.js';
import { holdPort } from '../../proxy/src/net/ports.js';
import { edgeDocument, loadTemplates, mergeDocument, sidecarDocument, type MeshDocument, type MeshTemplates } from './documents.js';
import { MeshProcess, type OutputSink } from './processes.js';

/**
 * Drains on one host: nothing balances in front of the edge, and the sidecars are stopped
 * only after the edge has stopped, so no drain delay is needed for a load balancer to forget
 * anyone (Kubernetes needs the templates' 5 s); in-flight requests still get 10 s to finish.
 */
export const ONE_HOST_DRAIN = { drain: { delay: '0s', timeout: '10s' } };

/** Settings the children take from the environment; they get theirs as flags instead. */
const NO_INHERITED_SETTINGS = Object.fromEntries(
  ['DATABASE_URL', 'REDIS_URL', 'TSMESH_TOKEN', 'TSMESH_NODE', 'TSMESH_CONTROL_PLANE', 'TSMESH_CACHE_DIR', 'TSMESH_GRPC', 'TSMESH_HTTP', 'TSMESH_DATA_DIR', 'TSMESH_REPLICA'].map((k) => [k, undefined]),
) as Record<string, undefined>;

const POSTGRES_PROCESS = fileURLToPath(new URL('./embedded-postgres-process.js', import.meta.url));

export interface MeshOptions {
  /** Gateway instances, each with its own sidecar. */
  readonly instances: number;
  /** host:port of the edge listener; port 0 picks a free one. */
  readonly edgeAddress: string;
  /** host:port of the edge's admin listener; port 0 picks a free one. */
  readonly edgeAdminAddress: string;
  readonly controlPlaneGrpc: string;
  readonly controlPlaneHttp: string;
  /** Bootstrap files, proxies' disk caches, the token, the embedded PostgreSQL's data. */
  readonly dataDir: string;
  /** A real PostgreSQL for the control plane and the gateways; without it an embedded one. */
  readonly databaseUrl?: string;
  /** A real Redis for the gateways' cache and the edge's global rate limits; without it in-process. */
  readonly redisUrl?: string;
  readonly seedDocuments?: number;
  /** PostgreSQL connections per gateway instance (the gateway's default: 10). */
  readonly gatewayPoolSize?: number;
  /** Default: examples/deploy/mesh/. */
  readonly templates?: MeshTemplates;
  /** Merged into the edge's / every sidecar's document (mergeDocument). */
  readonly edgePatch?: unknown;
  readonly sidecarPatch?: unknown;
  /** Every line every process prints, with its name. */
  readonly output?: OutputSink;
  /** Progress lines for the operator. */
  readonly log?: (line: string) => void;
  /** Log level of the processes that have one (control plane; default warn). */
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Called when a process exits on its own while the mesh runs. */
  readonly onUnexpectedExit?: (proc: MeshProcess, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Longest wait for the whole mesh to come up (default 120 s). */
  readonly startTimeoutMs?: number;
  /** Aborting it while the mesh starts stops what was started and rejects. */
  readonly signal?: AbortSignal;
}

export interface MeshInstance {
  readonly node: string;
  readonly appUrl: string;
  readonly sidecarUrl: string;
  readonly adminUrl: string;
}

export interface RunningMesh {
  readonly edgeUrl: string;
  readonly edgeAdminUrl: string;
  readonly controlPlane: { readonly httpUrl: string; readonly grpcAddress: string; readonly token: string; readonly tokenFile: string };
  readonly databaseUrl: string;
  readonly embeddedDatabase: boolean;
  readonly instances: readonly MeshInstance[];
  /** The documents applied, by selector, and the version each got. */
  readonly applied: ReadonlyArray<{ readonly selector: string; readonly version: string; readonly document: MeshDocument }>;
  readonly processes: readonly MeshProcess[];
  /** Drains and stops everything, in order; safe to call more than once. */
  stop(): Promise<void>;
}

/** Raised when a port the caller asked for is taken. */
export class PortInUseError extends Error {
  constructor(
    readonly what: string,
    readonly address: string,
  ) {
    super(`${what}: ${address} is already in use (another process listens there)`);
  }
}

/** A port checked free (or picked) and held until released: see holdPort. */
export interface ReservedPort {
  /** host:port, IPv6 hosts in brackets. */
  readonly address: string;
  release(): Promise<void>;
}

/**
 * Checks that host:port can be bound, or with port 0 finds a free one, and keeps it bound
 * until released: the ports reserved while others are held are all different. The process
 * that uses a port binds it after its release (the usual small race of free-port helpers with
 * whatever else binds port 0 meanwhile; fine on a developer's machine and in tests).
 */
export async function reservePort(what: string, address: string): Promise<ReservedPort> {
  const hp = parseHostPort(address);
  if (!hp) throw new Error(`${what}: must be an address like 127.0.0.1:8080 (got ${JSON.stringify(address)})`);
  try {
    const held = await holdPort(hp.host, hp.port);
    return { address: hp.host.includes(':') ? `[${hp.host}]:${held.port}` : `${hp.host}:${held.port}`, release: held.release };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new PortInUseError(what, address);
    throw new Error(`${what}: cannot listen on ${address}: ${err.code ?? err.message}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a rejection as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new Error('interrupted while starting'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('interrupted while starting'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

async function until<T>(what: string, deadline: number, probe: () => Promise<T | undefined>, alive: () => void): Promise<T> {
  let last = '';
  for (;;) {
    alive();
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await sleep(100);
  }
}

function tokenIn(dataDir: string): { token: string; file: string } {
  const file = join(dataDir, 'token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, file };
  }
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}

function jsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The bound URL from a `{"msg":"listening","url":...}` line (gateway, embedded PostgreSQL). */
function listeningUrl(line: string): string | undefined {
  const rec = jsonLine(line);
  return rec?.msg === 'listening' && typeof rec.url === 'string' ? rec.url : undefined;
}

export async function startMesh(o: MeshOptions): Promise<RunningMesh> {
  if (!Number.isInteger(o.instances) || o.instances < 1) throw new Error(`instances must be a positive integer (got ${o.instances})`);
  const log = o.log ?? (() => {});
  const sink: OutputSink = o.output ?? (() => {});
  const deadline = Date.now() + (o.startTimeoutMs ?? 120_000);
  const dataDir = resolve(o.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const templates = o.templates ?? loadTemplates();

  // 1. Ports: the ones asked for must be free (a clear error now rather than a proxy NACKing
  //    its listener later); the others are picked. Every one stays held until all are chosen,
  //    so no two come out the same; each stays held until just before its process starts.
  //    No process of the mesh binds port 0 itself (a port picked and released could be given
  //    to it): the gateways too get ports picked here.
  const held: ReservedPort[] = [];
  const reserve = async (what: string, address: string) => {
    const r = await reservePort(what, address);
    held.push(r);
    return r;
  };
  let proxyPorts: ReservedPort[];
  let cpAndAppPorts: ReservedPort[];
  const slots: Array<{ node: string; app: string; sidecar: string; admin: string }> = [];
  let edgeAddress: string;
  let edgeAdmin: string;
  let cpGrpc: string;
  let cpHttp: string;
  try {
    const edge = await reserve('edge listener', o.edgeAddress);
    const admin = await reserve('edge admin', o.edgeAdminAddress);
    const grpc = await reserve('control plane gRPC', o.controlPlaneGrpc);
    const http = await reserve('control plane HTTP', o.controlPlaneHttp);
    [edgeAddress, edgeAdmin, cpGrpc, cpHttp] = [edge.address, admin.address, grpc.address, http.address];
    cpAndAppPorts = [grpc, http];
    proxyPorts = [edge, admin];
    for (let i = 1; i <= o.instances; i++) {
      const app = await reserve(`gateway-${i}`, '127.0.0.1:0');
      const sidecar = await reserve(`gateway-${i} sidecar`, '127.0.0.1:0');
      const sidecarAdmin = await reserve(`gateway-${i} sidecar admin`, '127.0.0.1:0');
      cpAndAppPorts.push(app);
      proxyPorts.push(sidecar, sidecarAdmin);
      slots.push({ node: `gateway-${i}`, app: app.address, sidecar: sidecar.address, admin: sidecarAdmin.address });
    }
  } catch (err) {
    await Promise.all(held.map((h) => h.release()));
    throw err;
  }
  const releaseAll = () => Promise.all(held.map((h) => h.release()));

  const processes: MeshProcess[] = [];
  // Exits while starting fail the start (alive()); once up, they are the caller's to hear of.
  let up = false;
  const spawnChild = (name: string, args: string[], extra: { script?: string; env?: Record<string, string | undefined> } = {}) => {
    // The children get URLs as flags; what the parent's environment says must not leak in.
    const p = new MeshProcess({ name, args, script: extra.script, env: { ...NO_INHERITED_SETTINGS, ...extra.env } }, sink);
    processes.push(p);
    void p.exited.then(({ code, signal }) => {
      if (up) o.onUnexpectedExit?.(p, code, signal);
    });
    return p;
  };
  const alive = () => {
    if (o.signal?.aborted) throw new Error('interrupted while starting');
    for (const p of processes) if (!p.running) throw new Error(`${p.name} exited (${p.exitStatus}); its output:\n${p.tail()}`);
  };

  let db: MeshProcess | undefined;
  const stopAll = async () => {
    up = false;
    const byRole = (prefix: string) => processes.filter((p) => p.name.startsWith(prefix));
    // Edge first: it drains while its endpoints are still there; then what it called.
    await Promise.all(byRole('edge').map((p) => p.stop(40_000)));
    await Promise.all(processes.filter((p) => p.name.endsWith('-sidecar')).map((p) => p.stop(40_000)));
    await Promise.all(processes.filter((p) => /^gateway-\d+$/.test(p.name)).map((p) => p.stop(20_000)));
    await Promise.all(byRole('control-plane').map((p) => p.stop(15_000)));
    if (db) await db.stop(15_000);
    // Anything left (a process that ignored SIGTERM already got SIGKILL above).
    await Promise.all(processes.map((p) => p.exited));
  };

  try {
    // 2. PostgreSQL.
    let databaseUrl = o.databaseUrl;
    if (!databaseUrl) {
      const pgDir = join(dataDir, 'postgres');
      log(`starting the embedded PostgreSQL (data in ${pgDir})`);
      db = spawnChild('postgres', [pgDir], { script: POSTGRES_PROCESS });
      databaseUrl = await abortable(db.waitForLine((l) => listeningUrl(l), Math.max(1000, deadline - Date.now()), 'PostgreSQL accepting connections'), o.signal);
    }
    const dbUrl = databaseUrl;

    // 3. The control plane and the gateway instances, at once.
    await Promise.all(cpAndAppPorts.map((p) => p.release()));
    const { token, file: tokenFile } = tokenIn(dataDir);
    const cpUrl = `http://${cpHttp}`;
    log(`starting the control plane (gRPC ${cpGrpc}, HTTP ${cpUrl}) and ${o.instances} gateway instance${o.instances === 1 ? '' : 's'}`);
    spawnChild('control-plane', ['control-plane', '--grpc', cpGrpc, '--http', cpHttp, '--database-url', dbUrl, '--replica', 'demo', '--data-dir', join(dataDir, 'control-plane'), '--log-level', o.logLevel ?? 'warn'], {
      env: { TSMESH_TOKEN: token },
    });
    const gateways = slots.map((s) => {
      const args = ['gateway', '--listen', s.app, '--database-url', dbUrl, '--name', s.node];
      if (o.redisUrl) args.push('--redis-url', o.redisUrl);
      if (o.seedDocuments !== undefined) args.push('--seed-documents', String(o.seedDocuments));
      if (o.gatewayPoolSize !== undefined) args.push('--pool-size', String(o.gatewayPoolSize));
      return spawnChild(s.node, args);
    });
    const appUrls = await abortable(Promise.all(gateways.map((g) => g.waitForLine((l) => listeningUrl(l), Math.max(1000, deadline - Date.now()), 'listening line'))), o.signal);
    const api = new ApiClient({ server: cpUrl, token, author: 'tsmesh-demo', timeoutMs: 10_000 });
    await until(
      'the control plane to be ready',
      deadline,
      async () => {
        const r = await fetch(`${cpUrl}/ready`, { signal: AbortSignal.timeout(2000) });
        return r.ok ? true : undefined;
      },
      alive,
    );

    // 4. The documents, through the control plane's API (what `tsmesh apply` does).
    const instances = slots.map((s, i) => ({ ...s, app: new URL(appUrls[i]!).host }));
    const local = (doc: MeshDocument, patch: unknown) => mergeDocument(mergeDocument(doc, ONE_HOST_DRAIN), patch);
    const documents: MeshDocument[] = [
      ...instances.map((s) => local(sidecarDocument(templates.sidecar, { node: s.node, app: s.app, sidecar: s.sidecar }), o.sidecarPatch)),
      local(edgeDocument(templates.edge, { node: 'edge', listen: edgeAddress }, instances.map((s) => s.sidecar), o.redisUrl), o.edgePatch),
    ];
    const applied: Array<{ selector: string; version: string; document: MeshDocument }> = [];
    for (const document of documents) {
      const r = await api.apply(document, `tsmesh demo: ${document.selector === 'edge' ? 'the edge' : `${String(document.selector)}'s sidecar`}`);
      applied.push({ selector: r.selector, version: r.version, document });
    }
    log(`applied ${applied.length} documents through the control plane: ${applied.map((a) => `${a.selector} (version ${a.version})`).join(', ')}`);

    // 5. The proxies, from bootstrap files.
    const proxiesDir = join(dataDir, 'proxies');
    const startProxy = (node: string, admin: string, name: string) => {
      const dir = join(proxiesDir, node);
      // A disk copy from an earlier run names that run's ports; the control plane has the truth.
      rmSync(join(dir, 'cache'), { recursive: true, force: true });
      mkdirSync(join(dir, 'cache'), { recursive: true });
      const bootstrap = join(dir, 'bootstrap.yaml');
      writeFileSync(bootstrap, `# Written by tsmesh demo: where ${node} finds its admin port and the control plane.\n${stringify({ admin: { address: admin }, controlPlane: { address: cpGrpc, node, token, cacheDir: join(dir, 'cache') } })}`, { mode: 0o600 });
      chmodSync(bootstrap, 0o600);
      return spawnChild(name, ['proxy', '--config', bootstrap, '--node', node]);
    };
    log(`starting ${o.instances} sidecar${o.instances === 1 ? '' : 's'} and the edge`);
    await Promise.all(proxyPorts.map((p) => p.release()));
    for (const s of instances) startProxy(s.node, s.admin, `${s.node}-sidecar`);
    startProxy('edge', edgeAdmin, 'edge');

    // 6. Up: every proxy runs what was applied, and a request passes edge → sidecar → app.
    const expected = new Map(applied.map((a) => [a.selector, a.version]));
    await until(
      'every proxy to acknowledge its config',
      deadline,
      async () => {
        const st = await api.status();
        const acked = new Set(st.proxies.filter((p) => p.state === 'acked' && expected.get(p.node) === p.version).map((p) => p.node));
        return [...expected.keys()].every((n) => acked.has(n)) ? true : undefined;
      },
      alive,
    );
    const edgeUrl = `http://${edgeAddress}`;
    await until(
      `the edge to answer GET ${edgeUrl}/health`,
      deadline,
      async () => {
        const r = await fetch(`${edgeUrl}/health`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return r.status === 200 ? true : undefined;
      },
      alive,
    );

    let stopping: Promise<void> | undefined;
    up = true;
    return {
      edgeUrl,
      edgeAdminUrl: `http://${edgeAdmin}`,
      controlPlane: { httpUrl: cpUrl, grpcAddress: cpGrpc, token, tokenFile },
      databaseUrl: dbUrl,
      embeddedDatabase: db !== undefined,
      instances: instances.map((s) => ({ node: s.node, appUrl: `http://${s.app}`, sidecarUrl: `http://${s.sidecar}`, adminUrl: `http://${s.admin}` })),
      applied,
      processes,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (err) {
    await releaseAll();
    await stopAll();
    throw err;
  }
}
