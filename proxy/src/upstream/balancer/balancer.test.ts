import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointState } from '../endpoint.js';
import { candidates } from './balancer.js';
import { RoundRobinBalancer } from './round-robin.js';
import { LeastRequestBalancer } from './least-request.js';
import { DEFAULT_RTT_MS, EWMA_TAU_MS, PeakEwmaBalancer, currentEstimate, recordPenalty, recordRtt } from './peak-ewma.js';

const eps = (n: number) => Array.from({ length: n }, (_, i) => new EndpointState(`127.0.0.1:${9000 + i}`));

/** A deterministic random source cycling through values. */
const cycle = (values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

test('round-robin visits every endpoint in turn', () => {
  const e = eps(3);
  const rr = new RoundRobinBalancer();
  const picks = Array.from({ length: 9 }, () => rr.pick(e, [], 0)!.port);
  assert.deepEqual(picks, [9000, 9001, 9002, 9000, 9001, 9002, 9000, 9001, 9002]);
});

test('unavailable endpoints are skipped; failed ones avoided while another is available', () => {
  const e = eps(4);
  e[1]!.ejectedUntil = 100;
  const pool = candidates(e, [e[0]!], 50);
  assert.deepEqual(pool.map((x) => x.port), [9002, 9003]);
  // Everything available already failed: a failed endpoint is still better than nothing.
  assert.deepEqual(candidates(e, [e[0]!, e[2]!, e[3]!], 50).map((x) => x.port), [9000, 9002, 9003]);
  // The common case allocates nothing: the input array itself.
  assert.equal(candidates(e, [], 200), e);
});

test('panic mode: with fewer than half available, every endpoint is a candidate', () => {
  const e = eps(4);
  e[0]!.healthy = false;
  e[1]!.healthy = false;
  e[2]!.ejectedUntil = 1000;
  assert.deepEqual(candidates(e, [], 0).map((x) => x.port), [9000, 9001, 9002, 9003]);
  e[0]!.healthy = true;
  e[1]!.healthy = true;
  assert.deepEqual(candidates(e, [], 0).map((x) => x.port), [9000, 9001, 9003]);
  assert.equal(new RoundRobinBalancer().pick([], [], 0), undefined);
});

test('least-request prefers the candidate with fewer requests in flight', () => {
  const e = eps(2);
  e[0]!.outstanding = 5;
  const lr = new LeastRequestBalancer(cycle([0.1, 0.2]));
  for (let i = 0; i < 10; i++) assert.equal(lr.pick(e, [], 0), e[1]);
});

test('least-request spreads load across endpoints under concurrency', () => {
  const e = eps(4);
  const lr = new LeastRequestBalancer();
  for (let i = 0; i < 400; i++) lr.pick(e, [], 0)!.outstanding++;
  for (const ep of e) assert.ok(ep.outstanding >= 90 && ep.outstanding <= 110, `${ep.address}: ${ep.outstanding}`);
});

test('peak-EWMA: a slower sample takes over at once, faster ones decay it with time', () => {
  const ep = new EndpointState('127.0.0.1:1');
  assert.equal(currentEstimate(ep, 0), DEFAULT_RTT_MS);
  recordRtt(ep, 10, 1000);
  assert.equal(ep.rttEstimate, 10);
  recordRtt(ep, 50, 1001);
  assert.equal(ep.rttEstimate, 50, 'peak');
  recordRtt(ep, 10, 1001 + EWMA_TAU_MS);
  const w = Math.exp(-1);
  assert.ok(Math.abs(ep.rttEstimate - (50 * w + 10 * (1 - w))) < 1e-9);
  // The estimate also decays while idle.
  assert.ok(currentEstimate(ep, 1001 + 3 * EWMA_TAU_MS) < ep.rttEstimate / 5);
});

test('peak-EWMA prefers the faster endpoint, weighs outstanding requests, and moves load away from shedding endpoints', () => {
  const e = eps(2);
  recordRtt(e[0]!, 5, 100);
  recordRtt(e[1]!, 20, 100);
  const b = new PeakEwmaBalancer(cycle([0.1, 0.2]));
  assert.equal(b.pick(e, [], 100), e[0]);
  e[0]!.outstanding = 5; // 5 x 6 = 30 > 20 x 1
  assert.equal(b.pick(e, [], 100), e[1]);
  e[0]!.outstanding = 0;
  recordPenalty(e[0]!, 100); // a 503: counts as slow
  assert.ok(e[0]!.rttEstimate >= 15);
  recordPenalty(e[0]!, 100);
  assert.equal(b.pick(e, [], 100), e[1]);
});

test('peak-EWMA spread: a slow endpoint gets a small share, the rest share evenly', () => {
  const e = eps(3);
  recordRtt(e[0]!, 1, 10);
  recordRtt(e[1]!, 1, 10);
  recordRtt(e[2]!, 40, 10);
  const b = new PeakEwmaBalancer();
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[e.indexOf(b.pick(e, [], 10)!)]!++;
  assert.ok(counts[2]! < 100, `slow endpoint got ${counts[2]}`);
  assert.ok(Math.abs(counts[0]! - counts[1]!) < 300);
});
