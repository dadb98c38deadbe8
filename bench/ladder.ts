#!/usr/bin/env node
// npm run bench:ladder: the original report's load test reproduced against topologies
// started on this machine. Prints progress, then the paths of the Markdown, JSON and SVG
// reports (under bench/results/, gitignored). Reports figures; asserts nothing.
//
//   npm run bench:ladder -- --steps 10,50,100 --step-duration 3s --topologies nginx
import { Command, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { durationArg as duration } from '../cli/option-parsers.js';
import { renderMarkdown } from './ladder/report-markdown.js';
import { DEFAULT_SETTINGS, runLadder } from './ladder/run.js';
import { writeReport } from './ladder/write.js';
import { TOPOLOGIES } from './topologies/index.js';
import { exitOnSignals } from '../examples/demo/exit-hooks.js';

// A Ctrl-C, SIGTERM or SIGHUP exits through the exit hooks that kill what this started.
exitOnSignals();

const RESULTS = fileURLToPath(new URL('../../bench/results', import.meta.url));

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`must be a non-negative integer (got "${v}")`);
  return n;
}

function list(v: string): number[] {
  const steps = v.split(',').map((x) => Number(x.trim()));
  if (steps.length === 0 || steps.some((x) => !Number.isInteger(x) || x < 1)) throw new InvalidArgumentError(`must be a comma-separated list of positive integers (got "${v}")`);
  return steps;
}

function names(v: string): string[] {
  const ts = v.split(',').map((x) => x.trim()).filter(Boolean);
  const unknown = ts.filter((t) => !TOPOLOGIES[t]);
  if (ts.length === 0 || unknown.length) throw new InvalidArgumentError(`unknown topology ${unknown.join(', ') || '(none)'}; known: ${Object.keys(TOPOLOGIES).join(', ')}`);
  return ts;
}

const d = DEFAULT_SETTINGS;
const program = new Command('bench:ladder')
  .description("the original report's load ladder (closed-model user steps and an open-model step) against each topology")
  .option('--topologies <names>', `comma-separated: ${Object.keys(TOPOLOGIES).join(', ')}`, names, [...d.topologies])
  .option('--steps <users>', 'closed-model steps, comma-separated user counts', list, [...d.steps])
  .option('--step-duration <d>', 'length of each closed step', duration, d.stepDurationMs)
  .option('--open-rate <n>', 'open-model step: requests per second (0: skip)', count, d.openRate)
  .option('--open-duration <d>', 'length of the open-model step', duration, d.openDurationMs)
  .option('--open-max-connections <n>', 'connection bound of the open-model step', count, d.openMaxConnections)
  .option('--instances <n>', 'gateway instances', count, d.instances)
  .option('--timeout <d>', 'client time-out per request (k6 defaults to 60s; shorter keeps steps bounded)', duration, d.timeoutMs)
  .option('--error-pause <d>', 'closed model: pause of a user after a failed request (socket failure, or an answer >= 400 such as a 503/429) before its next one; k6 does not pause (0)', duration, d.errorPauseMs)
  .option('--step-warmup <d>', "closed model: each step's users run this long unrecorded first, on the connections the step measures (0: the record starts with every user connecting at once, as with k6's constant-vus)", duration, d.stepWarmupMs)
  .option('--queries <n>', 'distinct varying queries', count, d.distinctQueries)
  .option('--warmup <d>', 'unreported warm-up per topology', duration, d.warmupMs)
  .option('--pause <d>', 'pause between steps', duration, d.pauseMs)
  .option('--seed-documents <n>', 'documents generated into the database', count, d.seedDocuments)
  .option('--in-process', 'run the load generator in this process instead of a child process')
  .option('--out <dir>', 'directory for the reports', RESULTS)
  .action(async (o: { topologies: string[]; steps: number[]; stepDuration: number; openRate: number; openDuration: number; openMaxConnections: number; instances: number; timeout: number; errorPause: number; stepWarmup: number; queries: number; warmup: number; pause: number; seedDocuments: number; inProcess?: boolean; out: string }) => {
    if (o.instances < 1) throw new Error('--instances must be at least 1');
    const report = await runLadder(
      {
        topologies: o.topologies,
        steps: o.steps,
        stepDurationMs: o.stepDuration,
        openRate: o.openRate,
        openDurationMs: o.openDuration,
        openMaxConnections: Math.max(1, o.openMaxConnections),
        instances: o.instances,
        timeoutMs: o.timeout,
        errorPauseMs: o.errorPause,
        stepWarmupMs: o.stepWarmup,
        distinctQueries: Math.max(1, o.queries),
        warmupMs: o.warmup,
        pauseMs: o.pause,
        seedDocuments: Math.max(1, o.seedDocuments),
        childLoadgen: !o.inProcess,
      },
      (line) => console.error(line),
    );
    const files = writeReport(report, resolve(o.out));
    console.log(renderMarkdown(report, files.svg));
    console.log(`report: ${files.markdown}\njson:   ${files.json}\nchart:  ${files.svg}`);
    // Topology helpers may leave exit hooks armed; the run is over.
    process.exit(report.topologies.some((t) => t.error) ? 1 : 0);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`bench:ladder: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
