// The ladder chart as SVG, written by hand (no chart library needed for two line plots):
// p95 latency (log scale) and success % against users (log scale), one series per topology,
// the original report's success rates as a dashed reference.
import { ORIGINAL_ROWS } from './original.js';
import { fmtMs, TARGET_ERROR_PCT, TARGET_P95_MS } from './report-markdown.js';
import type { LadderReport } from './types.js';

const PALETTE = ['#d1495b', '#2e86ab', '#3b8e3b', '#8e5ea2', '#e39b29', '#444444'];
const ORIGINAL_COLOR = '#9a9a9a';

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

interface Panel {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

interface Point {
  readonly users: number;
  readonly value: number | null;
}

const n = (v: number) => (Math.round(v * 10) / 10).toString();

function logScale(min: number, max: number, from: number, to: number): (v: number) => number {
  const a = Math.log10(min);
  const b = Math.log10(max);
  return (v) => from + ((Math.log10(v) - a) / (b - a || 1)) * (to - from);
}

function linScale(min: number, max: number, from: number, to: number): (v: number) => number {
  return (v) => from + ((v - min) / (max - min || 1)) * (to - from);
}

/** Polyline segments through the points that have a value (a gap where there is none). */
function paths(points: readonly Point[], sx: (v: number) => number, sy: (v: number) => number): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const p of points) {
    if (p.value === null) {
      if (cur.length) out.push(cur.join(' '));
      cur = [];
      continue;
    }
    cur.push(`${cur.length ? 'L' : 'M'}${n(sx(p.users))},${n(sy(p.value))}`);
  }
  if (cur.length) out.push(cur.join(' '));
  return out;
}

function series(name: string, color: string, points: readonly Point[], sx: (v: number) => number, sy: (v: number) => number, dashed = false): string {
  const lines = paths(points, sx, sy).map((d) => `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
  const dots = points
    .filter((p) => p.value !== null)
    .map((p) => `<circle cx="${n(sx(p.users))}" cy="${n(sy(p.value!))}" r="3.5" fill="${color}"><title>${escapeXml(`${name}: ${p.users} users: ${p.value}`)}</title></circle>`);
  return `<g class="series" data-series="${escapeXml(name)}">${lines.join('')}${dots.join('')}</g>`;
}

export function renderSvg(report: LadderReport): string {
  const W = 980;
  const H = 470;
  const left: Panel = { x: 70, y: 80, w: 380, h: 300 };
  const right: Panel = { x: 560, y: 80, w: 380, h: 300 };
  const userValues = [...new Set([...report.settings.steps, ...ORIGINAL_ROWS.map((r) => r.users)])].sort((a, b) => a - b);
  const xMin = Math.min(...userValues);
  const xMax = Math.max(...userValues, xMin * 10);

  const topo = report.topologies.map((t, i) => {
    const closed = t.steps.filter((s) => s.kind === 'closed').sort((a, b) => a.users - b.users);
    return {
      name: t.name,
      color: PALETTE[i % PALETTE.length]!,
      p95: closed.map((s) => ({ users: s.users, value: s.result.latencyMs?.p95 ?? null })),
      success: closed.map((s) => ({ users: s.users, value: s.result.successPct })),
    };
  });

  const p95s = topo.flatMap((t) => t.p95.map((p) => p.value)).filter((v): v is number => v !== null && v > 0);
  const eLo = Math.floor(Math.log10(Math.min(...p95s, TARGET_P95_MS, 1)));
  const eHi = Math.ceil(Math.log10(Math.max(...p95s, TARGET_P95_MS * 5)));
  const yLo = 10 ** eLo;
  const yHi = 10 ** eHi;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(`Load ladder ${report.startedAt}: p95 and success % against users`)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(`Load ladder: ${report.settings.instances} gateway instances, POST /query, closed model`)}</text>`);

  // Legend.
  const legend = [...topo.map((t) => ({ name: t.name, color: t.color, dashed: false })), { name: 'original report (success only)', color: ORIGINAL_COLOR, dashed: true }];
  let lx = 70;
  for (const l of legend) {
    out.push(`<line x1="${lx}" y1="46" x2="${lx + 26}" y2="46" stroke="${l.color}" stroke-width="3"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 32}" y="50">${escapeXml(l.name)}</text>`);
    lx += 50 + l.name.length * 7;
  }

  const panel = (p: Panel, title: string, yTicks: number[], sy: (v: number) => number, yLabel: (v: number) => string, target: { value: number; label: string }) => {
    const sx = logScale(xMin, xMax, p.x, p.x + p.w);
    out.push(`<g class="panel">`);
    out.push(`<text x="${p.x + p.w / 2}" y="${p.y - 10}" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`);
    out.push(`<rect x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" fill="none" stroke="#888888"/>`);
    for (const v of yTicks) {
      const y = n(sy(v));
      out.push(`<line x1="${p.x}" y1="${y}" x2="${p.x + p.w}" y2="${y}" stroke="#e6e6e6"/>`);
      out.push(`<text x="${p.x - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(yLabel(v))}</text>`);
    }
    for (const u of userValues) {
      const x = n(sx(u));
      out.push(`<line x1="${x}" y1="${p.y}" x2="${x}" y2="${p.y + p.h}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${x}" y="${p.y + p.h + 16}" text-anchor="middle">${u}</text>`);
    }
    out.push(`<text x="${p.x + p.w / 2}" y="${p.y + p.h + 36}" text-anchor="middle">concurrent users (log scale)</text>`);
    const ty = n(sy(target.value));
    out.push(`<line x1="${p.x}" y1="${ty}" x2="${p.x + p.w}" y2="${ty}" stroke="#cc0000" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${p.x + p.w - 4}" y="${Number(ty) - 4}" text-anchor="end" fill="#cc0000" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(target.label)}</text>`);
    return sx;
  };

  // p95 panel.
  const yTicks: number[] = [];
  for (let e = eLo; e <= eHi; e++) yTicks.push(Number((10 ** e).toPrecision(1)));
  const syL = logScale(yLo, yHi, left.y + left.h, left.y);
  const sxL = panel(left, 'p95 latency of successful requests (ms, log scale)', yTicks, syL, (v) => String(v), { value: TARGET_P95_MS, label: `target p95 < ${TARGET_P95_MS} ms` });
  for (const t of topo) out.push(series(t.name, t.color, t.p95, sxL, syL));
  out.push('</g>');

  // Success panel.
  const syR = linScale(0, 100, right.y + right.h, right.y);
  const sxR = panel(right, 'success %', [0, 20, 40, 60, 80, 100], syR, (v) => `${v} %`, { value: 100 - TARGET_ERROR_PCT, label: `target ${100 - TARGET_ERROR_PCT} %` });
  out.push(series('original report', ORIGINAL_COLOR, ORIGINAL_ROWS.map((r) => ({ users: r.users, value: r.successPct })), sxR, syR, true));
  for (const t of topo) out.push(series(t.name, t.color, t.success, sxR, syR));
  out.push('</g>');

  // The open-model step has no users axis: a line of text per topology.
  let y = H - 28;
  for (const t of report.topologies) {
    const open = t.steps.find((s) => s.kind === 'open');
    if (!open) continue;
    const r = open.result;
    out.push(`<text x="70" y="${y}" fill="#333333">${escapeXml(`open model ${open.rate} req/s, ${t.name}: ${r.successPct} % success, p95 ${fmtMs(r.latencyMs?.p95)} ms, ${Math.round(r.rps)} req/s`)}</text>`);
    y += 16;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
