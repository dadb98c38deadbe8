#!/usr/bin/env node
// The load generator as a process, so that a benchmark keeps it off the processes it
// measures: `node dist/bench/loadgen/cli.js --url http://127.0.0.1:8080/query --queries 1000
// --users 100 --duration 5s` prints one JSON result on stdout.
import { Command, InvalidArgumentError } from 'commander';
import { durationArg as duration } from '../../cli/option-parsers.js';
import { toLoadOptions, type BodySpec, type PlainLoadOptions } from './options.js';
import { runLoad } from './run.js';

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`must be a positive number (got "${v}")`);
  return n;
}

function header(v: string, all: Record<string, string>): Record<string, string> {
  const i = v.indexOf(':');
  if (i <= 0) throw new InvalidArgumentError(`must be "Name: value" (got "${v}")`);
  return { ...all, [v.slice(0, i).trim()]: v.slice(i + 1).trim() };
}

interface Flags {
  spec?: string;
  url?: string;
  method?: string;
  header: Record<string, string>;
  body?: string;
  queries?: number;
  users?: number;
  rate?: number;
  duration: number;
  requests?: number;
  timeout: number;
  think?: number;
  errorBackoff?: number;
  errorAnswerBackoff?: number;
  rampUp?: number;
  maxConnections?: number;
  pretty?: boolean;
}

export function plainOptionsFromFlags(f: Flags): PlainLoadOptions {
  if (f.spec) return JSON.parse(f.spec) as PlainLoadOptions;
  if (!f.url) throw new Error('--url is required (or --spec)');
  if ((f.users === undefined) === (f.rate === undefined)) throw new Error('give exactly one of --users (closed model) or --rate (open model)');
  if (f.body !== undefined && f.queries !== undefined) throw new Error('give at most one of --body and --queries');
  const body: BodySpec = f.queries !== undefined ? { kind: 'queries', distinct: f.queries } : f.body !== undefined ? { kind: 'fixed', body: f.body } : { kind: 'none' };
  const headers = { ...f.header };
  if (body.kind !== 'none' && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
  const request = { method: f.method ?? (body.kind === 'none' ? 'GET' : 'POST'), headers, body };
  const common = { url: f.url, request, durationMs: f.duration, maxRequests: f.requests, timeoutMs: f.timeout };
  if (f.users !== undefined) {
    if (!Number.isInteger(f.users)) throw new Error('--users must be an integer');
    return { ...common, model: 'closed', users: f.users, thinkTimeMs: f.think, errorBackoffMs: f.errorBackoff, errorAnswerBackoffMs: f.errorAnswerBackoff, rampUpMs: f.rampUp };
  }
  return { ...common, model: 'open', rate: f.rate!, maxConnections: f.maxConnections };
}

const program = new Command('loadgen')
  .description('HTTP/1.1 keep-alive load generator: closed (users) or open (rate) model; prints a JSON result')
  .option('--spec <json>', 'all options as JSON (PlainLoadOptions); used by runLoadInChild')
  .option('--url <url>', 'target, e.g. http://127.0.0.1:8080/query')
  .option('--method <method>', 'HTTP method (default GET, or POST with a body)')
  .option('--header <name: value>', 'request header (repeatable)', header, {})
  .option('--body <text>', 'fixed request body')
  .option('--queries <n>', 'varying POST /query bodies drawn from n distinct queries', positive)
  .option('--users <n>', 'closed model: concurrent users, one connection each', positive)
  .option('--rate <n>', 'open model: requests per second', positive)
  .option('--duration <d>', 'measured window', duration, 5000)
  .option('--requests <n>', 'stop after this many requests', positive)
  .option('--timeout <d>', 'client time-out per request', duration, 10_000)
  .option('--think <d>', 'closed model: pause between a response and the next request', duration)
  .option('--error-backoff <d>', 'closed model: pause after a socket failure (refused, reset, time-out); default 100ms', duration)
  .option('--error-answer-backoff <d>', 'closed model: pause after an error answer (status >= 400); default 0 like k6', duration)
  .option('--ramp-up <d>', 'closed model: spread the users\' starts over this long', duration)
  .option('--max-connections <n>', 'open model: connection bound', positive)
  .option('--pretty', 'indent the JSON')
  .action(async (f: Flags) => {
    const result = await runLoad(toLoadOptions(plainOptionsFromFlags(f)));
    process.stdout.write(`${JSON.stringify(result, null, f.pretty ? 2 : undefined)}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`loadgen: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
