import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VegasLimit } from './vegas.js';

function feed(v: VegasLimit, n: number, rtt: number, opts: { inFlight?: number; drop?: boolean } = {}) {
  for (let i = 0; i < n; i++) v.onSample(0, rtt, opts.inFlight ?? Math.ceil(v.limit), opts.drop ?? false);
}

// A jitter source that keeps the rttNoLoad probe far away unless a test wants it.
const noProbe = () => 0.999;

test('vegas grows fast with no queueing, shrinks when latency says requests are queued, grows again when it falls', () => {
  const v = new VegasLimit({ initial: 20, min: 4, max: 200, probeMultiplier: 1000, random: noProbe });
  feed(v, 1, 10);
  assert.equal(v.rttNoLoad, 10);
  feed(v, 10, 10);
  assert.equal(v.limit, 80, 'queue 0: +6 per sample while the limit is under 100');
  feed(v, 30, 10);
  assert.equal(v.limit, 200, 'up to max');

  feed(v, 20, 20); // queue = limit/2: far past 6 log10(limit)
  assert.equal(v.limit, 200 - 20 * 2, 'down by log10(limit) per sample');
  const down = v.limit;
  feed(v, 30, 20);
  assert.ok(v.limit < down);
  const low = v.limit;
  feed(v, 10, 10);
  assert.ok(v.limit > low, `${low} -> ${v.limit}`);
});

test('vegas leaves the limit alone while the estimated queue is between 3 and 6 log10(limit)', () => {
  const v = new VegasLimit({ initial: 40, min: 4, max: 200, probeMultiplier: 1000, random: noProbe });
  feed(v, 1, 10);
  // queue = ceil(40 * (1 - 10/11)) = 4: within [3, 6] for log10root(40) = 1
  feed(v, 10, 11);
  assert.equal(v.limit, 40);
});

test('vegas does not learn while the load uses less than half the limit', () => {
  const v = new VegasLimit({ initial: 40, min: 4, max: 200, probeMultiplier: 1000, random: noProbe });
  feed(v, 1, 10);
  feed(v, 20, 10, { inFlight: 5 });
  feed(v, 20, 50, { inFlight: 5 });
  assert.equal(v.limit, 40);
});

test('vegas shrinks on drops, to its minimum, and a drop never becomes the baseline latency', () => {
  const v = new VegasLimit({ initial: 20, min: 4, max: 200, probeMultiplier: 1000, random: noProbe });
  feed(v, 1, 10);
  v.onSample(0, 0.2, 20, true);
  assert.equal(v.limit, 19);
  assert.equal(v.rttNoLoad, 10);
  feed(v, 50, 1, { drop: true });
  assert.equal(v.limit, 4);
});

test('vegas re-probes its no-load latency, so a lasting slowdown stops shrinking the limit', () => {
  const v = new VegasLimit({ initial: 50, min: 4, max: 200, probeMultiplier: 2, random: () => 0 });
  feed(v, 1, 10);
  feed(v, 200, 30); // the upstream is now 3x slower for good
  assert.equal(v.rttNoLoad, 30, 'the probe took the current latency as the new baseline');
  const settled = v.limit;
  feed(v, 20, 30);
  assert.ok(v.limit >= settled, 'no more shrinking once the baseline moved');
});
