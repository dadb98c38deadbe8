import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { proxyConfig, type ProxyConfig } from '../config/schema.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import type { GlobalAwareFactory } from './global-rate-limiter.js';
import { ProxyRateLimiters } from './proxy-rate-limiters.js';

// Nothing listens on port 1: the backends stay down, which is all these tests need (a real
// Redis is used by test/global-rate-limit.test.ts and test/control-plane-proxies.test.ts).
const config = (redis?: string): ProxyConfig =>
  proxyConfig.parse({ controlPlane: { address: '127.0.0.1:1', node: 'n' }, ...(redis ? { redis: { url: redis } } : {}) });

const closed = (f: GlobalAwareFactory) => (f.backend as unknown as { closed: boolean }).closed;

test('one factory per Redis URL: kept while the URL stays, replaced (old one closed after the grace) when it changes', async () => {
  const metrics = new ProxyMetrics();
  const p = new ProxyRateLimiters({ proxyId: 'n', metrics, env: {}, graceMs: 30 });
  try {
    const local = await p.forConfig(config());
    assert.equal((local as GlobalAwareFactory).backend, undefined, 'no Redis URL: global limits run locally');
    assert.equal(await p.forConfig(config()), local);

    const one = (await p.forConfig(config('redis://127.0.0.1:1/0'))) as GlobalAwareFactory;
    assert.notEqual(one, local);
    assert.ok(one.backend);
    assert.equal(await p.forConfig(config('redis://127.0.0.1:1/0')), one, 'same URL, same factory and connection');
    assert.equal(p.redisUrl, 'redis://127.0.0.1:1/0');

    const two = (await p.forConfig(config('redis://127.0.0.1:1/1'))) as GlobalAwareFactory;
    assert.notEqual(two, one);
    assert.equal(closed(one), false, 'the old connection serves the old snapshot for a while');
    await sleep(80);
    assert.equal(closed(one), true, 'then it is closed');
    assert.equal(closed(two), false);

    const back = await p.forConfig(config());
    assert.equal((back as GlobalAwareFactory).backend, undefined);
    assert.match(await metrics.registry.metrics(), /tsmesh_rate_limit_backend_up 0/);
  } finally {
    await p.close();
  }
  await assert.rejects(p.forConfig(config()), /closed/);
});

test('REDIS_URL is used when the config has no redis.url', async () => {
  const p = new ProxyRateLimiters({ proxyId: 'n', env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  try {
    const f = (await p.forConfig(config())) as GlobalAwareFactory;
    assert.ok(f.backend);
    assert.equal(p.redisUrl, 'redis://127.0.0.1:1');
    const own = (await p.forConfig(config('redis://127.0.0.1:1/2'))) as GlobalAwareFactory;
    assert.notEqual(own, f, "the config's own URL wins");
  } finally {
    await p.close();
  }
});
