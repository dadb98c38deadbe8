import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRateLimit, boundedKey, rateLimitPolicyField } from './rate-limit.js';
import { localRateLimiterFactory } from './token-bucket.js';
import { rateLimit } from '../config/schema.js';
import type { RateLimiter, RateLimiterFactory } from './rate-limiter.js';
import { StateRegistry } from './state-store.js';
import type { Handler } from './types.js';
import { harness, upstreamResponse } from '../../../test/support/policy-fixtures.js';

function setup(rl: Record<string, unknown>) {
  const h = harness({ route: { rateLimit: rl } });
  let created = 0;
  const base = localRateLimiterFactory(h.clock);
  const factory: RateLimiterFactory = (name, cfg) => {
    created++;
    return base(name, cfg);
  };
  let calls = 0;
  const bottom: Handler = async () => {
    calls++;
    return upstreamResponse(200, h.cluster.endpoints[0]!);
  };
  const build = () => buildRateLimit(h.build({ rateLimiters: factory }))!(bottom);
  return { h, build, calls: () => calls, created: () => created };
}

test('requests beyond the bucket get 429 rate_limited with Retry-After and the IETF RateLimit fields, and never reach next', async () => {
  const { h, build, calls } = setup({ requestsPerSecond: 2, burst: 3 });
  const handler = build();
  for (let i = 0; i < 3; i++) assert.equal((await handler(h.ctx())).status, 200);
  const ctx = h.ctx();
  const r = await handler(ctx);
  assert.equal(r.status, 429);
  assert.equal(r.kind === 'local' && r.reason, 'rate_limited');
  assert.equal(ctx.reason, 'rate_limited');
  assert.equal(calls(), 3);
  const headers = new Map(r.kind === 'local' ? r.headers : []);
  assert.equal(headers.get('retry-after'), '1', 'half a second rounds up to a whole second');
  assert.equal(headers.get('ratelimit-policy'), '"query";q=2;w=1;tsmesh-burst=3');
  assert.equal(headers.get('ratelimit'), '"query";r=0;t=1');
  h.clock.advance(500);
  assert.equal((await handler(h.ctx())).status, 200, 'refilled');
});

test('keyed limits: each header value has its own bucket', async () => {
  const { h, build } = setup({ requestsPerSecond: 1, burst: 1, key: { header: 'X-Client-Id' } });
  const handler = build();
  const as = (id?: string) => handler(h.ctx(id === undefined ? {} : { headers: { 'x-client-id': id } }));
  assert.equal((await as('a')).status, 200);
  assert.equal((await as('a')).status, 429);
  assert.equal((await as('b')).status, 200);
  assert.equal((await as()).status, 200);
  assert.equal((await as()).status, 429, 'requests without the header share one bucket');
});

test('buckets survive a config swap while the rateLimit block is unchanged; a changed block starts new buckets', async () => {
  const { h, build, created } = setup({ requestsPerSecond: 1, burst: 1 });
  assert.equal((await build()(h.ctx())).status, 200);
  assert.equal((await build()(h.ctx())).status, 429, 'the rebuilt policy found the spent bucket');
  assert.equal(created(), 1);
  h.route = { ...h.route, rateLimit: rateLimit.parse({ requestsPerSecond: 1, burst: 2 }) };
  assert.equal((await build()(h.ctx())).status, 200);
  assert.equal(created(), 2);
});

test('a limiter is closed when its route leaves the config or drops its rateLimit block; the old snapshot still gets answers', async () => {
  const h = harness({ route: { rateLimit: { requestsPerSecond: 1, burst: 1 } } });
  const base = localRateLimiterFactory(h.clock);
  const open = new Set<RateLimiter>();
  let closed = 0;
  const factory: RateLimiterFactory = (name, cfg) => {
    const inner = base(name, cfg);
    const l: RateLimiter = {
      take: (key) => inner.take(key),
      close: () => {
        closed++;
        open.delete(l);
        inner.close();
      },
    };
    open.add(l);
    return l;
  };
  const bottom: Handler = async () => upstreamResponse(200, h.cluster.endpoints[0]!);
  const routes = new StateRegistry();
  const build = () => buildRateLimit(h.build({ rateLimiters: factory, routeState: routes.of('query') }));

  // The route leaves the config: the runtime's retain() disposes its state, closing the limiter.
  const old = build()!(bottom);
  assert.equal(open.size, 1);
  routes.retain(['other']);
  assert.equal(open.size, 0);
  assert.equal(closed, 1);
  assert.equal((await old(h.ctx())).status, 200, 'a request still on the old snapshot is answered');
  routes.retain(['other']);
  assert.equal(closed, 1, 'released once');

  // The route comes back, then loses its rateLimit block: the limiter is closed at that build.
  build();
  assert.equal(open.size, 1);
  const limited = h.route;
  h.route = { ...h.route, rateLimit: undefined };
  assert.equal(build(), undefined);
  assert.equal(open.size, 0);
  h.route = limited;
  build();
  assert.equal(open.size, 1, 'and a new limiter starts when it comes back');
  assert.equal(closed, 2);
});

test('policy field for sub-1/s rates, and hostile keys are bounded', () => {
  assert.equal(rateLimitPolicyField('"r"', rateLimit.parse({ requestsPerSecond: 0.2 })), '"r";q=1;w=5;tsmesh-burst=1');
  assert.equal(rateLimitPolicyField('"r"', rateLimit.parse({ requestsPerSecond: 1000, burst: 200 })), '"r";q=1000;w=1;tsmesh-burst=200');
  assert.equal(boundedKey('client-7'), 'client-7');
  const long = 'x'.repeat(30_000);
  assert.ok(boundedKey(long).length < 60);
  assert.equal(boundedKey(long), boundedKey(long));
  assert.notEqual(boundedKey(long), boundedKey(long + 'y'));
});

test('no rateLimit block, no policy', () => {
  assert.equal(buildRateLimit(harness().build()), undefined);
});

test('a new limiter factory (the proxy made one for a new redis.url) replaces the route limiter; the same factory keeps it', async () => {
  const h = harness({ route: { rateLimit: { requestsPerSecond: 1, burst: 1 } } });
  const made: Array<{ factory: string; closed: boolean }> = [];
  const factoryNamed = (factory: string): RateLimiterFactory => (name, cfg) => {
    const inner = localRateLimiterFactory(h.clock)(name, cfg);
    const entry = { factory, closed: false };
    made.push(entry);
    return { take: (k) => inner.take(k), close: () => (entry.closed = true) };
  };
  const a = factoryNamed('a');
  const b = factoryNamed('b');
  const routes = new StateRegistry();
  const bottom: Handler = async () => upstreamResponse(200, h.cluster.endpoints[0]!);
  const build = (f: RateLimiterFactory) => buildRateLimit(h.build({ rateLimiters: f, routeState: routes.of('query') }))!(bottom);

  const first = build(a);
  assert.equal((await first(h.ctx())).status, 200);
  build(a);
  assert.equal(made.length, 1, 'same factory, same block: the bucket survives the swap');
  const second = build(b);
  assert.deepEqual(made, [{ factory: 'a', closed: true }, { factory: 'b', closed: false }]);
  assert.equal((await second(h.ctx())).status, 200, 'a fresh bucket from the new factory');
  assert.equal((await first(h.ctx())).status, 429, 'the old snapshot still gets answers from its (closed) limiter');
});
