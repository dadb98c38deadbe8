// The PostgreSQL and Redis every topology shares: real servers on free loopback ports in
// temporary directories (the same helpers the integration tests use).
import { startPostgres, startRedis } from '../../test/support/servers.js';
import type { BackingServices } from './types.js';

export interface RunningBacking extends BackingServices {
  stop(): Promise<void>;
}

export async function startBacking(): Promise<RunningBacking> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  return {
    databaseUrl: pg.url,
    redisUrl: redis.url,
    stop: async () => {
      await Promise.all([pg.stop(), redis.stop()]);
    },
  };
}
