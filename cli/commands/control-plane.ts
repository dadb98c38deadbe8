import { Option, type Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';

interface Flags {
  grpc: string;
  http: string;
  token?: string;
  dataDir: string;
  databaseUrl?: string;
  replica?: string;
  logLevel: string;
}

/** Without --token, one is made once and kept in the data directory (readable by its owner only). */
function tokenFor(flags: Flags, log: (msg: string) => void): string {
  if (flags.token) return flags.token;
  const file = join(resolve(flags.dataDir), 'token');
  if (existsSync(file)) {
    log(`using the token in ${file}`);
    return readFileSync(file, 'utf8').trim();
  }
  mkdirSync(resolve(flags.dataDir), { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  log(`no --token given: generated one into ${file}; give it to proxies and to the CLI (TSMESH_TOKEN)`);
  return token;
}

export function registerControlPlane(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane: config revisions in PostgreSQL, streamed to proxies over gRPC, and the HTTP API of the CLI')
    .addOption(new Option('--grpc <host:port>', 'address of the gRPC stream for proxies').env('TSMESH_GRPC').default('127.0.0.1:15010'))
    .addOption(new Option('--http <host:port>', 'address of the HTTP API (CLI, /metrics, /ready)').env('TSMESH_HTTP').default('127.0.0.1:15011'))
    .addOption(new Option('--token <token>', 'bearer token proxies and the CLI must send (default: generated once into DATA_DIR/token)').env('TSMESH_TOKEN'))
    .addOption(new Option('--data-dir <dir>', 'where the embedded PostgreSQL keeps its data when DATABASE_URL is not set').env('TSMESH_DATA_DIR').default('.tsmesh/control-plane'))
    .addOption(new Option('--database-url <url>', 'a real PostgreSQL (postgres://...); replicas share one').env('DATABASE_URL'))
    .addOption(new Option('--replica <name>', 'name of this replica in status (default: host name and a random suffix)').env('TSMESH_REPLICA'))
    .addOption(new Option('--log-level <level>', 'log level of the JSON log on stdout').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(async (flags: Flags) => {
      // Loaded here, not at the top: every tsmesh command (the proxy too) would otherwise load
      // the control plane's PostgreSQL and gRPC server modules.
      const { startControlPlane } = await import('../../control-plane/src/control-plane.js');
      const log = pino({ name: 'tsmesh-control-plane', level: flags.logLevel });
      const token = tokenFor(flags, (msg) => log.warn(msg));
      const cp = await startControlPlane({
        grpc: flags.grpc,
        http: flags.http,
        token,
        dataDir: flags.dataDir,
        databaseUrl: flags.databaseUrl,
        replica: flags.replica,
        log,
      });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'stopping');
        cp.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'stop failed');
            process.exit(1);
          },
        );
      };
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(signal));
    });
}
