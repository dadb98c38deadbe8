import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gradient2Limit } from './gradient2.js';

/** Feeds n samples, one every 20 ms of clock time, with the given latency, load and drops. */
function feed(g: Gradient2Limit, clock: { t: number }, n: number, rtt: number, opts: { inFlight?: (limit: number) => number; dropEvery?: number } = {}) {
  for (let i = 0; i < n; i++) {
    const inFlight = opts.inFlight ? opts.inFlight(g.limit) : Math.ceil(g.limit);
    const drop = opts.dropEvery !== undefined && i % opts.dropEvery === 0;
    g.onSample(clock.t, rtt, inFlight, drop);
    clock.t += 20;
  }
}

test('gradient2 grows while latency stays at its baseline, shrinks when it rises, and grows again when it falls', () => {
  const g = new Gradient2Limit({ initial: 20, min: 4, max: 1000 });
  const clock = { t: 0 };
  feed(g, clock, 300, 10);
  const grown = g.limit;
  assert.ok(grown > 30, `steady latency, saturated: ${grown}`);

  feed(g, clock, 300, 40);
  const shrunk = g.limit;
  assert.ok(shrunk < grown * 0.6, `latency x4: ${grown} -> ${shrunk}`);
  assert.ok(g.longRtt < 40, 'the baseline lags the current latency');

  feed(g, clock, 600, 10);
  assert.ok(g.limit > shrunk + 10, `latency back to normal: ${shrunk} -> ${g.limit}`);
});

test('gradient2 tolerates latency within rttTolerance of the baseline', () => {
  const g = new Gradient2Limit({ initial: 50, min: 4, max: 1000 });
  const clock = { t: 0 };
  feed(g, clock, 200, 10);
  const before = g.limit;
  feed(g, clock, 50, 12); // 1.2 x the baseline, inside the 1.25 tolerance
  assert.ok(g.limit >= before, `${before} -> ${g.limit}`);
});

test('gradient2 does not move while less than half the limit is in use', () => {
  const g = new Gradient2Limit({ initial: 40, min: 4, max: 1000 });
  const clock = { t: 0 };
  feed(g, clock, 300, 10, { inFlight: () => 5 });
  assert.equal(g.limit, 40);
  feed(g, clock, 300, 80, { inFlight: () => 5 });
  assert.equal(g.limit, 40);
});

test('gradient2 cuts the limit on windows losing more than 5 % to drops, and stays within min and max', () => {
  const g = new Gradient2Limit({ initial: 100, min: 10, max: 120 });
  const clock = { t: 0 };
  feed(g, clock, 500, 10, { dropEvery: 50 }); // 2 %: background errors
  assert.equal(g.limit, 120, 'grew to max despite a few drops');
  feed(g, clock, 40, 10, { dropEvery: 4 }); // 25 %
  assert.ok(g.limit < 120 * 0.9 ** 2, `${g.limit}`);
  feed(g, clock, 2000, 10, { dropEvery: 1 });
  assert.equal(g.limit, 10, 'never below min');
});

test('gradient2 updates once per window: at least 10 samples and 2 x the minimum latency (100 ms to 1 s)', () => {
  const g = new Gradient2Limit({ initial: 20, min: 4, max: 1000 });
  // Samples 1 ms apart: the first window closes after the 10th sample, the next one no sooner than 100 ms later.
  let changes = 0;
  let last = g.limit;
  for (let i = 0; i < 200; i++) {
    g.onSample(i, 5, 20, false);
    if (g.limit !== last) {
      changes++;
      last = g.limit;
    }
  }
  assert.equal(changes, 2, 'windows closed at 14 ms and 115 ms');
});
