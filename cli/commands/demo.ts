// `tsmesh demo` (npm start): the whole mesh on this machine, the config applied through the
// control plane, the original report's curl commands printed, Ctrl-C stops it all in order.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isAbsolute, relative, resolve } from 'node:path';
import { startMesh, PortInUseError, type RunningMesh } from '../../examples/demo/mesh.js';
import { TEMPLATE_DIR } from '../../examples/demo/documents.js';
import type { OutputSink } from '../../examples/demo/processes.js';

interface DemoFlags {
  instances: number;
  host: string;
  port: number;
  adminPort: number;
  grpcPort: number;
  apiPort: number;
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  seedDocuments?: number;
  verbose?: boolean;
}

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max} (got "${v}")`);
    return n;
  };
}

const PINO_LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/**
 * Every process's output, one line at a time with its name in front. Quiet by default: what
 * goes to stderr and log records of level warn and above; `--verbose` shows everything
 * (including the edge's sampled access log).
 */
export function demoOutput(verbose: boolean, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): OutputSink {
  const width = 18;
  return (name, stream, line) => {
    if (!line.trim()) return;
    const prefix = `[${name}]`.padEnd(width);
    if (verbose || stream === 'stderr') {
      write(`${prefix} ${line}`);
      return;
    }
    if (!line.startsWith('{')) return;
    let rec: { level?: number; msg?: string; err?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      return;
    }
    if (typeof rec.level === 'number' && rec.level >= 40) {
      const err = rec.err === undefined ? '' : `: ${typeof rec.err === 'string' ? rec.err : JSON.stringify(rec.err)}`;
      write(`${prefix} ${PINO_LEVELS[rec.level] ?? rec.level} ${rec.msg ?? ''}${err}`);
    }
  };
}

function flagOf(what: string): string {
  if (what === 'edge listener') return '--port';
  if (what === 'edge admin') return '--admin-port';
  if (what === 'control plane gRPC') return '--grpc-port';
  if (what === 'control plane HTTP') return '--api-port';
  return '';
}

/** A path as short as it can be said from here: relative below the working directory, else absolute. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function banner(m: RunningMesh, f: DemoFlags): string {
  const edgePort = new URL(m.edgeUrl).port;
  const base = `http://localhost:${edgePort}`;
  const cli = `node ${shown(process.argv[1] ?? 'dist/cli/tsmesh.js')}`;
  const tokenFile = shown(m.controlPlane.tokenFile);
  const templates = shown(TEMPLATE_DIR.replace(/\/$/, ''));
  const rows = [
    ['edge', m.edgeUrl, `admin ${m.edgeAdminUrl}`],
    ...m.instances.map((i) => [i.node, `sidecar ${i.sidecarUrl}`, `admin ${i.adminUrl}`, `app ${i.appUrl}`]),
    ['control plane', `API ${m.controlPlane.httpUrl}`, `gRPC ${m.controlPlane.grpcAddress}`],
  ];
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.max(...rows.map((r) => r[1]!.length));
  const w2 = Math.max(...rows.map((r) => (r[2] ?? '').length));
  const table = rows.map((r) => `  ${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${(r[2] ?? '').padEnd(w2)}  ${r[3] ?? ''}`.trimEnd());
  return [
    '',
    `tsmesh demo is up: ${m.instances.length} gateway instance${m.instances.length === 1 ? '' : 's'}, each behind its own tsmesh sidecar, behind the tsmesh edge on ${m.edgeUrl}.`,
    `Data: ${m.embeddedDatabase ? `embedded PostgreSQL under ${shown(resolve(f.dataDir))}` : 'PostgreSQL at DATABASE_URL'}; ${f.redisUrl ? 'Redis at REDIS_URL (query cache, global rate limits)' : 'in-process query caches, local rate limits (set REDIS_URL for Redis)'}.`,
    '',
    "The original report's commands, against the edge:",
    `  curl ${base}/health`,
    `  curl -X POST ${base}/query -H "Content-Type: application/json" -d '{"query":"test"}'`,
    '',
    'The mesh (admin: /ready, /metrics, /config_dump, POST /drain):',
    ...table,
    '',
    `The config came through the control plane, not from files: one document per sidecar (selector gateway-1, gateway-2, ...)`,
    `generated from ${templates}/gateway-sidecars.yaml, since on one host every sidecar needs its own ports`,
    `(in Kubernetes that one document, selector gateway-*, serves every pod), and ${templates}/edge.yaml for the edge.`,
    '',
    'Look inside (another terminal):',
    `  export TSMESH_SERVER=${m.controlPlane.httpUrl} TSMESH_TOKEN=$(cat ${tokenFile})`,
    `  ${cli} status                  # every proxy, the version it runs, ACK/NACK`,
    `  ${cli} history                 # the revisions applied`,
    `  ${cli} stat -w                 # live traffic per route: success, req/s, latency, rejections`,
    `  curl ${m.edgeAdminUrl}/metrics`,
    '',
    'Ctrl-C stops everything (the edge drains first).',
    '',
  ].join('\n');
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole demo mesh on this machine (npm start): the control plane, N gateway instances each behind a tsmesh sidecar, ' +
        'and the tsmesh edge on localhost:8080; the config is applied through the control plane. Ctrl-C stops everything.',
    )
    .option('-n, --instances <n>', 'gateway instances, each with its own sidecar (the original system had 5)', intArg('--instances', 1, 50), 3)
    .option('--host <host>', 'address every listener binds to', '127.0.0.1')
    .option('-p, --port <port>', 'port of the edge (0: any free port)', intArg('--port', 0, 65535), 8080)
    .option('--admin-port <port>', "port of the edge's admin listener (0: any free port)", intArg('--admin-port', 0, 65535), 15000)
    .option('--grpc-port <port>', "port of the control plane's gRPC stream (0: any free port)", intArg('--grpc-port', 0, 65535), 15010)
    .option('--api-port <port>', "port of the control plane's HTTP API (0: any free port)", intArg('--api-port', 0, 65535), 15011)
    .option('--data-dir <dir>', 'embedded PostgreSQL data, bootstrap files, proxy caches and the token', '.tsmesh/demo')
    .addOption(new Option('--database-url <url>', 'a real PostgreSQL for the control plane and the gateways (default: embedded)').env('DATABASE_URL'))
    .addOption(new Option('--redis-url <url>', "a real Redis for the gateways' cache and the edge's global rate limits (default: in-process)").env('REDIS_URL'))
    .option('--seed-documents <n>', 'rows generated into an empty documents table', intArg('--seed-documents', 1, 10_000_000))
    .option('-v, --verbose', 'print every line of every process (default: warnings and errors only)')
    .action(async (f: DemoFlags) => {
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const progress = (line: string) => out(`tsmesh demo: ${line}`);
      const starting = new AbortController();
      let mesh: RunningMesh | undefined;
      let stopping = false;
      let firstSignalAt = 0;

      const finish = async (code: number) => {
        stopping = true;
        if (mesh) {
          progress('stopping: the edge drains, then the sidecars, the gateways, the control plane and PostgreSQL');
          await mesh.stop();
          progress('stopped');
        }
        process.exit(code);
      };
      const onSignal = (signal: NodeJS.Signals) => {
        const now = Date.now();
        if (firstSignalAt === 0) {
          firstSignalAt = now;
          progress(`${signal}: stopping (press Ctrl-C again to kill everything at once)`);
          starting.abort();
          if (mesh) void finish(0);
          return;
        }
        // npm forwards the terminal's Ctrl-C a moment after the terminal sent it itself.
        if (now - firstSignalAt < 1000) return;
        progress(`${signal} again: killing everything now`);
        for (const p of mesh?.processes ?? []) p.kill();
        process.exit(1);
      };
      // SIGHUP: the terminal closed. The children (own sessions) do not get it; the demo stops them.
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onSignal);

      try {
        mesh = await startMesh({
          instances: f.instances,
          edgeAddress: `${f.host}:${f.port}`,
          edgeAdminAddress: `${f.host}:${f.adminPort}`,
          controlPlaneGrpc: `${f.host}:${f.grpcPort}`,
          controlPlaneHttp: `${f.host}:${f.apiPort}`,
          dataDir: f.dataDir,
          databaseUrl: f.databaseUrl || undefined,
          redisUrl: f.redisUrl || undefined,
          seedDocuments: f.seedDocuments,
          output: demoOutput(f.verbose ?? false),
          log: progress,
          logLevel: f.verbose ? 'info' : 'warn',
          signal: starting.signal,
          onUnexpectedExit: (p, code, signal) => {
            if (stopping) return;
            progress(`${p.name} exited on its own (${code ?? signal})`);
            if (p.name === 'edge' || p.name === 'postgres') {
              progress('the demo cannot go on without it');
              void finish(1);
            } else if (p.name.endsWith('-sidecar') || /^gateway-\d+$/.test(p.name)) {
              progress('the edge takes that instance out (outlier ejection, at most one of 3 to 5 at a time, and health checks) and keeps serving through the others');
            } else if (p.name === 'control-plane') {
              progress('the proxies keep running on their last config');
            }
          },
        });
      } catch (err) {
        if (starting.signal.aborted) {
          progress('stopped before it was up');
          process.exit(0);
        }
        if (err instanceof PortInUseError) {
          const flag = flagOf(err.what);
          console.error(`tsmesh demo: ${err.message}${flag ? `; choose another port with ${flag}` : ''}`);
        } else console.error(`tsmesh demo: could not start: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      }
      if (starting.signal.aborted) {
        await finish(0);
        return;
      }
      out(banner(mesh, f));
    });
}
