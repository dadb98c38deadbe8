import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../clock.js';
import { rateLimit } from '../config/schema.js';
import { TokenBucketLimiter, localRateLimiterFactory } from './token-bucket.js';

const config = (input: Record<string, unknown>) => rateLimit.parse(input);

function takeN(l: TokenBucketLimiter, n: number, key = ''): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (l.take(key).allowed) allowed++;
  return allowed;
}

test('a full bucket allows a burst, then refills at requestsPerSecond', () => {
  const clock = new FakeClock();
  const l = new TokenBucketLimiter(config({ requestsPerSecond: 10, burst: 5 }), clock);
  assert.equal(takeN(l, 8), 5, 'the burst');
  const denied = l.take('');
  assert.equal(denied.allowed, false);
  assert.equal(denied.remaining, 0);
  assert.equal(denied.retryAfterMs, 100, 'one token every 100 ms');
  clock.advance(50);
  assert.equal(l.take('').retryAfterMs, 50);
  clock.advance(50);
  assert.equal(takeN(l, 3), 1);
  clock.advance(1000);
  assert.equal(takeN(l, 20), 5, 'refill never exceeds the burst');
  clock.advance(10_000);
  const r = l.take('');
  assert.equal(r.allowed, true);
  assert.equal(r.remaining, 4);
});

test('the default burst is one second of requests; fractional rates work', () => {
  const clock = new FakeClock();
  assert.equal(new TokenBucketLimiter(config({ requestsPerSecond: 250 }), clock).capacity, 250);
  const slow = new TokenBucketLimiter(config({ requestsPerSecond: 0.5 }), clock);
  assert.equal(slow.capacity, 1);
  assert.equal(takeN(slow, 3), 1);
  assert.equal(slow.take('').retryAfterMs, 2000);
  clock.advance(2000);
  assert.equal(takeN(slow, 3), 1);
});

test('keyed limits have a bucket per key, and requests without the key share one', () => {
  const clock = new FakeClock();
  const l = new TokenBucketLimiter(config({ requestsPerSecond: 1, burst: 2, key: { header: 'x-client-id' } }), clock);
  assert.equal(takeN(l, 5, 'alice'), 2);
  assert.equal(takeN(l, 5, 'bob'), 2);
  assert.equal(takeN(l, 5, ''), 2);
  assert.equal(takeN(l, 5, ''), 0);
  assert.equal(l.size, 2);
});

test('keys beyond maxKeys evict the least recently used bucket', () => {
  const clock = new FakeClock();
  const l = new TokenBucketLimiter(config({ requestsPerSecond: 1, burst: 1, key: { header: 'x-client-id' }, maxKeys: 3 }), clock);
  l.take('a');
  l.take('b');
  l.take('c');
  assert.equal(l.take('a').allowed, false, 'a is spent and now most recently used');
  l.take('d'); // evicts b, the least recently used
  assert.equal(l.size, 3);
  assert.equal(l.take('a').allowed, false, 'a kept its (empty) bucket');
  assert.equal(l.take('b').allowed, true, 'b was evicted and starts full');
  for (let i = 0; i < 10_000; i++) l.take(`hostile-${i}`);
  assert.equal(l.size, 3, 'a flood of new keys cannot grow memory');
});

test('the factory builds one independent limiter per call', () => {
  const clock = new FakeClock();
  const f = localRateLimiterFactory(clock);
  const a = f('r1', config({ requestsPerSecond: 1, burst: 1 }));
  const b = f('r2', config({ requestsPerSecond: 1, burst: 1 }));
  assert.equal(a.take('').allowed, true);
  assert.equal(b.take('').allowed, true);
  assert.equal(a.take('').allowed, false);
  a.close();
});
