// An upstream with a fixed capacity, as a process of its own (so that its CPU is not the
// proxy's): the fault-injecting test upstream in capacity mode, `--capacity` requests processed
// at once for `--latency` ms each, the rest waiting in arrival order, as a server with a fixed
// worker pool does. Prints {"port":N} once listening. Each line "stats" on stdin prints what it
// saw since the previous one (requests, the most in process at once, the longest queue) and
// starts counting again. Usage: node dist/bench/capacity-upstream.js --capacity 50 --latency 20
import { createInterface } from 'node:readline';
import { FaultUpstream } from '../test/support/fault-upstream.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : def;
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number`);
  return v;
};

const upstream = await FaultUpstream.start({ name: 'capacity', settings: { capacity: opt('capacity', 50), overflow: 'queue', latency: opt('latency', 20) } });
let maxQueued = 0;
const sampler = setInterval(() => {
  if (upstream.stats.queued > maxQueued) maxQueued = upstream.stats.queued;
}, 5);
process.stdout.write(`${JSON.stringify({ port: upstream.port })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  const s = upstream.stats;
  process.stdout.write(`${JSON.stringify({ requests: s.requests, maxInFlight: s.maxInFlight, maxQueued, clientAborts: s.clientAborts })}\n`);
  upstream.resetStats();
  maxQueued = 0;
});

const stop = () => {
  clearInterval(sampler);
  void upstream.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
