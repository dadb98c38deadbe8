// `tsmesh stat` output: aligned tables for people, one JSON document per report for machines.
import type { StatReport, StatRow } from './compute.js';

export interface StatOutput extends StatReport {
  /** When the report was made (ISO 8601). */
  readonly time: string;
  /** Proxies or sources that could not be read. */
  readonly problems: readonly string[];
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '-';
  const ms = seconds * 1000;
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 10) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${seconds.toFixed(2)}s`;
}

export function formatRate(perSecond: number): string {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

export function formatSuccess(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(2)}%`;
}

function formatRejections(r: Readonly<Record<string, number>>): string {
  const parts = Object.entries(r).map(([reason, n]) => `${reason}=${n}`);
  return parts.length ? parts.join(' ') : '-';
}

function table(header: string[], rows: string[][], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const NUMERIC = new Set([2, 3, 4, 5, 6]);

function cells(r: StatRow): string[] {
  return [formatSuccess(r.successRate), formatRate(r.requestsPerSecond), formatDuration(r.p50), formatDuration(r.p95), formatDuration(r.p99), formatRejections(r.rejections)];
}

export function renderText(out: StatOutput): string {
  const parts: string[] = [];
  parts.push(`${out.time}  window ${out.windowSeconds.toFixed(1)}s  proxies ${out.proxies}`);
  parts.push('');
  const cols = ['SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'REJECTIONS'];
  if (out.routes.length === 0) parts.push('no requests recorded yet');
  else {
    parts.push(table(['ROUTE', 'CLUSTER', ...cols], out.routes.map((r) => [r.route || '-', r.cluster || '-', ...cells(r)]), NUMERIC));
    parts.push('');
    parts.push(table(['CLUSTER', ...cols], out.clusters.map((r) => [r.cluster || '-', ...cells(r)]), new Set([1, 2, 3, 4, 5])));
  }
  if (out.problems.length) {
    parts.push('');
    for (const p of out.problems) parts.push(`! ${p}`);
  }
  return parts.join('\n');
}

export function renderJson(out: StatOutput): string {
  return JSON.stringify(out);
}
