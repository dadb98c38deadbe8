import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Redis } from 'ioredis';
import { startPostgres, startRedis } from './servers.js';

test('a real PostgreSQL starts, answers, stops and starts again with its data', async () => {
  const server = await startPostgres();
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  await client.query('create table t (x int); insert into t values (42)');
  await client.end();
  await server.stop();
  await server.start();
  const again = new pg.Client({ connectionString: server.url });
  await again.connect();
  assert.equal((await again.query('select x from t')).rows[0].x, 42);
  await again.end();
  await server.stop();
});

test('a real Redis starts, answers and can be killed', async () => {
  const server = await startRedis();
  const redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  assert.equal(await redis.ping(), 'PONG');
  redis.disconnect();
  await server.kill();
});
