// The ladder report as Markdown: the original report's table side by side with ours, then
// one detailed table per topology with every error class.
import { ERROR_CLASSES, type ErrorClass, type LoadResult } from '../loadgen/index.js';
import { ORIGINAL_ROWS, ORIGINAL_SETUP, originalAt } from './original.js';
import type { LadderReport, StepResult } from './types.js';

export const DETAIL_COLUMNS = [
  'users',
  'requests',
  'req/s',
  'success %',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  'refused',
  'reset',
  'client time-out',
  'other socket',
  'HTTP 5xx (app)',
  'HTTP 4xx',
  'tsmesh 503/429 (p99 ms)',
  'seen by the topology',
] as const;

const ERROR_COLUMN: Record<ErrorClass, string> = {
  refused: 'refused',
  reset: 'reset',
  timeout: 'client time-out',
  socketOther: 'other socket',
  http5xx: 'HTTP 5xx (app)',
  http4xx: 'HTTP 4xx',
  httpOther: 'other status',
};

/** Targets of the original report (its "Ключевые показатели"). */
export const TARGET_P95_MS = 200;
export const TARGET_ERROR_PCT = 5;

export function stepLabel(step: Pick<StepResult, 'kind' | 'users' | 'rate'>): string {
  return step.kind === 'closed' ? String(step.users) : `open ${step.rate}/s`;
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '–';
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return String(Math.round(ms));
}

function fmtPct(p: number): string {
  return Number.isInteger(p) ? `${p} %` : `${p.toFixed(1)} %`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function row(cells: readonly string[]): string {
  return `| ${cells.map(cell).join(' | ')} |`;
}

function tsmeshCell(r: LoadResult): string {
  const parts = Object.entries(r.tsmesh).map(([reason, x]) => `${reason} ${x.count} (${fmtMs(x.p99Ms)})`);
  return parts.length ? parts.join(', ') : '0';
}

function serverCell(s: StepResult): string {
  const parts = Object.entries(s.server).map(([k, v]) => `${k}: ${v}`);
  return parts.length ? parts.join(', ') : '–';
}

function errorCount(r: LoadResult, c: ErrorClass): string {
  return String(r.errors[c]);
}

export function detailRow(s: StepResult): string[] {
  const r = s.result;
  const l = r.latencyMs;
  const cells = [stepLabel(s), String(r.requests), String(Math.round(r.rps)), fmtPct(r.successPct), fmtMs(l?.p50), fmtMs(l?.p95), fmtMs(l?.p99), fmtMs(l?.max)];
  for (const c of ERROR_CLASSES) if (c !== 'httpOther') cells.push(errorCount(r, c));
  cells.push(tsmeshCell(r), serverCell(s));
  return cells;
}

export function meetsTargets(r: LoadResult): boolean {
  return r.latencyMs !== null && r.latencyMs.p95 < TARGET_P95_MS && 100 - r.successPct < TARGET_ERROR_PCT;
}

export function renderMarkdown(report: LadderReport, chartFile?: string): string {
  const s = report.settings;
  const out: string[] = [];
  out.push(`# Load ladder: ${report.startedAt}`);
  out.push('');
  out.push(
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node} (${report.machine.platform})` +
      `${report.machine.somaxconn ? `, net.core.somaxconn ${report.machine.somaxconn}` : ''}. ` +
      `Each closed step: N users, one keep-alive connection each, \`POST /query\` with ${s.distinctQueries} distinct varying queries in a loop for ${s.stepDurationMs / 1000} s; ` +
      `client time-out ${s.timeoutMs / 1000} s; ${s.errorPauseMs ? `after a failed request (socket failure or an answer >= 400) a user pauses ${s.errorPauseMs} ms (k6 does not)` : 'no pause after a failed request (as k6)'}; ${s.stepWarmupMs ? `each step's users ran ${s.stepWarmupMs / 1000} s unrecorded before its window, on the same connections` : "each step's record starts with its users connecting"}; ${s.instances} gateway instances; fresh PostgreSQL and Redis per topology; ${s.warmupMs / 1000} s warm-up not reported.` +
      (s.openRate > 0 ? ` Open step: ${s.openRate} requests/s for ${s.openDurationMs / 1000} s over at most ${s.openMaxConnections} connections, latency from the intended send time.` : ''),
  );
  out.push('');
  out.push('Wall-clock figures on a shared machine are noisy: compare topologies within one run.');
  out.push('');

  // Side by side.
  out.push('## Side by side with the original report');
  out.push('');
  const topoHeads = report.topologies.flatMap((t) => [`${t.name} success`, `${t.name} p95 ms`, `${t.name} req/s`, `${t.name} target met`]);
  out.push(row(['users', `original report (${ORIGINAL_SETUP})`, ...topoHeads]));
  out.push(row(['---', '---', ...topoHeads.map(() => '---:')]));
  const closedUsers = [...new Set([...ORIGINAL_ROWS.map((r) => r.users), ...s.steps])].sort((a, b) => a - b);
  for (const users of closedUsers) {
    const cells = [String(users), originalAt(users)];
    for (const t of report.topologies) {
      const step = t.steps.find((x) => x.kind === 'closed' && x.users === users);
      if (!step) cells.push('not run', '–', '–', '–');
      else {
        const r = step.result;
        cells.push(fmtPct(r.successPct), fmtMs(r.latencyMs?.p95), String(Math.round(r.rps)), meetsTargets(r) ? 'yes' : 'no');
      }
    }
    out.push(row(cells));
  }
  if (s.openRate > 0) {
    const cells = [`open ${s.openRate}/s`, 'not tested'];
    for (const t of report.topologies) {
      const step = t.steps.find((x) => x.kind === 'open');
      if (!step) cells.push('not run', '–', '–', '–');
      else cells.push(fmtPct(step.result.successPct), fmtMs(step.result.latencyMs?.p95), String(Math.round(step.result.rps)), meetsTargets(step.result) ? 'yes' : 'no');
    }
    out.push(row(cells));
  }
  out.push('');
  out.push(`"target met": p95 of successful requests < ${TARGET_P95_MS} ms and errors < ${TARGET_ERROR_PCT} %, the original report's targets (it also wanted 2000+ req/s at 1000+ users).`);
  if (chartFile) out.push('', `Chart: [${chartFile}](${chartFile}) (p95 and success % against users).`);
  out.push('');

  for (const t of report.topologies) {
    out.push(`## ${t.name}`);
    out.push('');
    out.push(t.description);
    out.push('');
    if (t.error) {
      out.push(`**The run failed:** ${t.error}`);
      out.push('');
    }
    out.push(row([...DETAIL_COLUMNS]));
    out.push(row(DETAIL_COLUMNS.map((c, i) => (i === 0 || c === 'tsmesh 503/429 (p99 ms)' || c === 'seen by the topology' ? '---' : '---:'))));
    for (const step of t.steps) out.push(row(detailRow(step)));
    out.push('');
    const other = t.steps.reduce((n, x) => n + x.result.errors.httpOther, 0);
    if (other > 0) out.push(`${ERROR_COLUMN.httpOther}: ${other} answers were 1xx/3xx.`, '');
  }

  out.push('## Columns');
  out.push('');
  out.push('- **req/s**: requests that ended within the step, per second of the step (successes and failures alike).');
  out.push('- **success %**: 2xx answers / every request that ended (including time-outs and requests finished after the step while draining).');
  out.push('- **p50/p95/p99/max**: latency of 2xx answers, from the moment the request was issued (connect included) or, in the open model, from its intended send time.');
  out.push('- **refused**: ECONNREFUSED. **reset**: ECONNRESET/EPIPE or the connection closed before the whole answer. **client time-out**: no full answer in the client time-out (open model: also requests that never got a connection in time). **other socket**: any other socket error or a malformed answer.');
  out.push('- **HTTP 5xx (app)** / **HTTP 4xx**: error answers without `x-tsmesh-reason` (from the gateway or nginx). **tsmesh 503/429**: answers tsmesh made itself, by `x-tsmesh-reason`, with their own p99.');
  out.push(
    '- **seen by the topology**: what it counted itself during the step (nginx: non-2xx statuses in its access log, such as 499 when a client gave up, and causes from its error log; tsmesh: rejections by reason at the edge and the sidecars, retries, ejections, the sidecars\' adaptive limits, the edge\'s event-loop delay, and the CPU ms of the edge and of all the sidecars together over the step and the pause before it), and the kernel\'s listen queue overflows on the whole machine (a connection dropped that way is retried by the client\'s kernel after 1 s, 3 s, ...: seconds of latency, not an error).',
  );
  out.push('');
  out.push('More in docs/benchmarks.md.');
  out.push('');
  return out.join('\n');
}
