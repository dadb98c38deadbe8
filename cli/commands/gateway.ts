import type { Command } from 'commander';
import { pino } from 'pino';
import { parseHostPort } from '../../proxy/src/config/units.js';

function parseListen(value: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new Error(`--listen must be HOST:PORT, e.g. 127.0.0.1:8080 (got "${value}")`);
  return hp;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got "${v}")`);
    return n;
  };
}

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('run the example gateway API (GET /health, POST /query) on PostgreSQL full-text search with a Redis cache')
    .option('--listen <addr>', 'HOST:PORT to listen on (port 0: any free port)', '127.0.0.1:8080')
    .option('--database-url <url>', 'PostgreSQL URL (default $DATABASE_URL; unset: embedded PostgreSQL under --data-dir)', process.env.DATABASE_URL)
    .option('--redis-url <url>', 'Redis URL for the query cache (default $REDIS_URL; unset: in-process cache)', process.env.REDIS_URL)
    .option('--data-dir <dir>', 'data directory of the embedded PostgreSQL', '.tsmesh/gateway')
    .option('--cache-ttl <ms>', 'query cache TTL in milliseconds', positiveInt('--cache-ttl'), 300_000)
    .option('--pool-size <n>', 'PostgreSQL connections of this instance', positiveInt('--pool-size'), 10)
    .option('--seed-documents <n>', 'rows generated into an empty documents table', positiveInt('--seed-documents'), 10_000)
    .option('--name <name>', 'instance name reported by /health')
    .action(async (o: { listen: string; databaseUrl?: string; redisUrl?: string; dataDir: string; cacheTtl: number; poolSize: number; seedDocuments: number; name?: string }) => {
      const { host, port } = parseListen(o.listen);
      // Loaded here, not at the top: every tsmesh command (the proxy too) would otherwise load
      // the gateway's PostgreSQL and Redis clients.
      const { startGateway } = await import('../../examples/gateway/index.js');
      const logger = pino({ base: { service: 'gateway' } });
      const gw = await startGateway({
        host,
        port,
        databaseUrl: o.databaseUrl || undefined,
        redisUrl: o.redisUrl || undefined,
        dataDir: o.dataDir,
        cacheTtlMs: o.cacheTtl,
        poolSize: o.poolSize,
        seedDocuments: o.seedDocuments,
        name: o.name,
        log: (level, msg, fields) => logger[level](fields ?? {}, msg),
      });
      // Parsed by bench/topologies to learn the bound port: keep the msg and url fields.
      logger.info({ url: gw.url, cache: gw.cacheKind, embeddedDatabase: gw.embeddedDatabase }, 'listening');
      let signals = 0;
      const shutdown = (signal: string) => {
        if (++signals > 1) process.exit(1); // a second Ctrl-C does not wait
        logger.info({ signal }, 'draining');
        gw.stop().then(
          () => {
            logger.info('stopped');
            process.exit(0);
          },
          (err: Error) => {
            logger.error({ err: err.message }, 'stop failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
}
