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

/**
 * A saturated upstream that processes `capacity` requests at once in `base` ms each, the rest
 * queued: a request admitted with n in flight takes base x max(1, n / capacity). Every slot of
 * the limit is in use (closed-loop clients far beyond it). Advances the clock by `ms`.
 */
function overload(g: Gradient2Limit, clock: { t: number }, ms: number, upstream: { base: number; capacity: number }) {
  const until = clock.t + ms;
  while (clock.t < until) {
    const n = Math.ceil(g.limit);
    const rtt = upstream.base * Math.max(1, n / upstream.capacity);
    // n requests finish per rtt: one sample every rtt / n ms.
    g.onSample(clock.t, rtt, n, false);
    clock.t += rtt / n;
  }
}

const seq = (...xs: number[]) => {
  let i = 0;
  return () => xs[i++ % xs.length]!;
};

test('without probes the baseline creeps up under a long overload and the limit with it; probes hold both near the upstream', () => {
  const upstream = { base: 100, capacity: 50 };
  const plain = new Gradient2Limit({ initial: 20, min: 4, max: 1000, probeIntervalMs: 0 });
  const probed = new Gradient2Limit({ initial: 20, min: 4, max: 1000, random: seq(0.5) });
  const c1 = { t: 0 };
  const c2 = { t: 0 };
  overload(plain, c1, 600_000, upstream);
  overload(probed, c2, 600_000, upstream);
  // Ten minutes at 10x: the plain baseline followed the queueing it should detect.
  assert.ok(plain.longRtt > 1.3 * upstream.base, `plain baseline ${plain.longRtt.toFixed(1)} ms`);
  assert.ok(plain.limit > 90, `plain limit ${plain.limit.toFixed(1)}`);
  // tolerance x capacity + 4 = 66.5 when the baseline is the upstream's own latency.
  assert.ok(probed.longRtt < 1.1 * upstream.base, `probed baseline ${probed.longRtt.toFixed(1)} ms`);
  assert.ok(probed.limit > 55 && probed.limit < 75, `probed limit ${probed.limit.toFixed(1)}`);
  assert.ok(probed.probes >= 18 && probed.probes <= 21, `a probe about every 30 s: ${probed.probes}`);
});

test('a probe halves the limit for about two round trips, then restores it; never while the limit does not bind', () => {
  const g = new Gradient2Limit({ initial: 60, min: 4, max: 60, random: seq(0.5) });
  const clock = { t: 0 };
  // Light load (5 in flight of 60) for a minute: no probe.
  feed(g, clock, 3000, 10, { inFlight: () => 5 });
  assert.equal(g.probes, 0);
  assert.equal(g.limit, 60);
  // Saturated: the next due probe halves the limit, then puts it back.
  const seen: number[] = [];
  for (let i = 0; i < 3000; i++) {
    g.onSample(clock.t, 10, Math.ceil(g.limit), false);
    seen.push(g.limit);
    clock.t += 20;
  }
  assert.ok(g.probes >= 1, 'probed once the limit bound');
  assert.ok(seen.includes(30), 'half the limit during the probe');
  const halved = seen.filter((l) => l === 30).length;
  // 10 ms round trips, one sample per 20 ms: a round trip to drain, then 10 clean samples.
  assert.ok(halved >= 10 && halved <= 12 * g.probes, `${halved} samples at half the limit over ${g.probes} probes`);
  assert.equal(g.limit, 60);
});

test('a probe takes an upstream that really became slower as the new baseline at once', () => {
  const g = new Gradient2Limit({ initial: 20, min: 4, max: 1000, random: seq(0.5) });
  const clock = { t: 0 };
  overload(g, clock, 120_000, { base: 100, capacity: 50 });
  const before = g.limit;
  // The upstream now needs 250 ms per request at the same concurrency (a slower dependency).
  overload(g, clock, 120_000, { base: 250, capacity: 50 });
  assert.ok(g.longRtt > 225 && g.longRtt < 275, `baseline re-measured: ${g.longRtt.toFixed(1)} ms`);
  assert.ok(g.limit > 0.8 * before, `the limit did not collapse for a latency that is not queueing: ${before.toFixed(1)} -> ${g.limit.toFixed(1)}`);
});

test('a probe without clean samples (all dropped) gives up and restores the limit', () => {
  const g = new Gradient2Limit({ initial: 40, min: 4, max: 40, probeIntervalMs: 1000, random: seq(0.5) });
  const clock = { t: 0 };
  feed(g, clock, 100, 10); // 2 s saturated at the baseline: the limit binds
  const probesBefore = g.probes;
  const drops: number[] = [];
  for (let i = 0; i < 600; i++) {
    g.onSample(clock.t, 10, Math.ceil(g.limit), true);
    drops.push(g.limit);
    clock.t += 20;
  }
  assert.equal(g.probes, probesBefore, 'no baseline taken from drops');
  const halvedAt = drops.findIndex((l, i) => i > 0 && l < drops[i - 1]! / 1.9);
  assert.ok(halvedAt >= 0, 'a probe started during the drops');
  const restored = drops.findIndex((l, i) => i > halvedAt && l > drops[halvedAt]!);
  assert.ok(restored > halvedAt, 'and gave up: the limit was restored');
  // Given up after the drain plus 5 x maxWindowMs (5 s): 250 samples at 20 ms.
  assert.ok(restored - halvedAt <= 260, `${restored - halvedAt} samples at half the limit`);
});
