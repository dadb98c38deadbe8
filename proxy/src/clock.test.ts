// The system clock's timers (one list per duration, one Node timer for the earliest expiry):
// real time, short durations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from './clock.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('timers of several durations fire once each, in deadline order; cancelled ones never', async () => {
  const fired: string[] = [];
  const t0 = systemClock.now();
  systemClock.setTimer(() => fired.push('40'), 40);
  systemClock.setTimer(() => fired.push('10'), 10);
  const c = systemClock.setTimer(() => fired.push('cancelled'), 20);
  systemClock.setTimer(() => fired.push('25'), 25);
  systemClock.setTimer(() => fired.push('10b'), 10, systemClock.now());
  c.cancel();
  c.cancel(); // twice is harmless
  await sleep(80);
  assert.deepEqual(fired, ['10', '10b', '25', '40']);
  assert.ok(systemClock.now() - t0 >= 40);
});

test('after a late wake-up, every due timer fires in deadline order across durations', async () => {
  const fired: string[] = [];
  systemClock.setTimer(() => fired.push('40'), 40);
  systemClock.setTimer(() => fired.push('10'), 10);
  systemClock.setTimer(() => fired.push('20'), 20);
  systemClock.setTimer(() => fired.push('10b'), 10);
  systemClock.setTimer(() => fired.push('30'), 30);
  // A stalled loop (a GC pause, a busy core): all five are due when the clock's timer runs.
  const until = systemClock.now() + 60;
  while (systemClock.now() < until) {
    // busy
  }
  await sleep(20);
  assert.deepEqual(fired, ['10', '10b', '20', '30', '40']);
});

test('a timer does not fire before its time (within the millisecond granularity)', async () => {
  const keepAlive = setTimeout(() => {}, 1000); // the clock's timers are unref'd: they keep nothing alive
  const start = systemClock.now();
  const at = await new Promise<number>((resolve) => systemClock.setTimer(() => resolve(systemClock.now()), 30));
  clearTimeout(keepAlive);
  assert.ok(at - start >= 29, `fired after ${at - start} ms`);
});

test('a timer set from a timer callback, even of 0 ms, fires later; a handle cancelled after firing is harmless', async () => {
  const order: string[] = [];
  const h = systemClock.setTimer(() => {
    order.push('outer');
    systemClock.setTimer(() => order.push('inner'), 0);
    order.push('after-set');
  }, 5);
  await sleep(40);
  h.cancel();
  assert.deepEqual(order, ['outer', 'after-set', 'inner']);
});

test('cancelling the earliest timer leaves the later ones on time', async () => {
  const fired: number[] = [];
  const first = systemClock.setTimer(() => fired.push(1), 5);
  systemClock.setTimer(() => fired.push(2), 15);
  first.cancel();
  await sleep(50);
  assert.deepEqual(fired, [2]);
});

test('a timer beyond setTimeout\'s range (30 days) waits instead of firing or spinning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  let fired = false;
  const t = systemClock.setTimer(() => (fired = true), 30 * 24 * 3600 * 1000);
  await sleep(30);
  t.cancel();
  process.off('warning', onWarning);
  assert.equal(fired, false);
  assert.deepEqual(warnings, [], 'no TimeoutOverflowWarning: the Node timer is clamped to 2^31-1 ms');
});
