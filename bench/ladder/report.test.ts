// The report renderers on a made-up report: columns, gaps where nothing succeeded, tsmesh
// rejections, escaping, and SVG that is well-formed XML.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allElements, parseXml } from '../../test/support/xml.js';
import type { LoadResult } from '../loadgen/index.js';
import { DETAIL_COLUMNS, detailRow, fmtMs, renderMarkdown } from './report-markdown.js';
import { DEFAULT_SETTINGS } from './run.js';
import { escapeXml, renderSvg } from './report-svg.js';
import type { LadderReport, StepResult } from './types.js';

function result(over: Partial<LoadResult>): LoadResult {
  return {
    model: 'closed',
    url: 'http://127.0.0.1:1',
    durationMs: 1000,
    elapsedMs: 1000,
    requests: 100,
    ok: 100,
    successPct: 100,
    latencyMs: { count: 100, p50: 1, p95: 2, p99: 3, max: 4, mean: 1.5 },
    errors: { refused: 0, reset: 0, timeout: 0, socketOther: 0, http5xx: 0, http4xx: 0, httpOther: 0, total: 0 },
    errorLatencyP99Ms: {},
    tsmesh: {},
    statuses: { 200: 100 },
    socketErrors: {},
    rps: 100,
    okRps: 100,
    connections: { opened: 1, maxOpen: 1 },
    cpuMs: { user: 1, system: 1 },
    loopDelayP99Ms: 1,
    loopDelayMaxMs: 1,
    ...over,
  };
}

const step = (users: number, r: LoadResult, server: Record<string, number> = {}): StepResult => ({ kind: 'closed', users, result: r, server });

const report: LadderReport = {
  startedAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:01:00.000Z',
  machine: { cpus: 2, cpuModel: 'test <cpu> & co', memoryGiB: 4, node: 'v20', platform: 'linux x64' },
  settings: { ...DEFAULT_SETTINGS, topologies: ['nginx', 'tsmesh'], steps: [10, 200, 5000] },
  topologies: [
    {
      name: 'nginx',
      description: 'nginx | round robin',
      steps: [
        step(10, result({})),
        step(200, result({ ok: 0, successPct: 0, latencyMs: null, errors: { refused: 100, reset: 0, timeout: 0, socketOther: 0, http5xx: 0, http4xx: 0, httpOther: 0, total: 100 } }), { 'nginx 499': 7, 'odd|name': 1 }),
        step(5000, result({ successPct: 50, latencyMs: { count: 50, p50: 900, p95: 9000, p99: 9900, max: 10_000, mean: 1000 } })),
      ],
    },
    {
      name: 'tsmesh',
      description: 'edge + sidecars',
      steps: [
        step(10, result({})),
        step(200, result({ successPct: 90, tsmesh: { overloaded: { count: 10, statuses: { 503: 10 }, p50Ms: 0.5, p99Ms: 0.8 } } })),
        { kind: 'open', users: 1000, rate: 2000, result: result({ model: 'open' }), server: {} },
      ],
    },
  ],
};

describe('ladder report', () => {
  it('Markdown: one detail row per step with every column, and the original rows beside ours', () => {
    const md = renderMarkdown(report, 'chart.svg');
    assert.ok(md.includes(`| ${DETAIL_COLUMNS.join(' | ')} |`));
    assert.match(md, /\| 200 \| 100 % errors: connection refused \| 0 % \| – \| 100 \| no \| 90 % \| 2.00 \| 100 \| no \|/);
    assert.match(md, /\| 5000 \| not tested \(failed from 200\) \| 50 % \| 9000 \| 100 \| no \| not run \|/);
    assert.match(md, /\| open 2000\/s \| not tested \| not run \| – \| – \| – \| 100 % \|/);
    assert.match(md, /overloaded 10 \(0.80\)/);
    assert.match(md, /nginx 499: 7/);
    assert.ok(md.includes('odd\\|name: 1'), 'pipes in cells are escaped');
    const detailLines = md.split('\n').filter((l) => /^\| (10|200|5000|open 2000\/s) \| \d+ \| \d+ \|/.test(l));
    assert.equal(detailLines.length, 6);
    for (const line of detailLines) {
      assert.equal(line.split(' | ').length, DETAIL_COLUMNS.length, line);
    }
    assert.equal(detailRow(report.topologies[0]!.steps[1]!)[8], '100', 'refused column');
  });

  it('SVG: well-formed, one series per topology per panel, a gap where nothing succeeded', () => {
    const svg = parseXml(renderSvg(report));
    const series = allElements(svg).filter((e) => e.attrs.class === 'series');
    assert.deepEqual(series.map((s) => s.attrs['data-series']), ['nginx', 'tsmesh', 'original report', 'nginx', 'tsmesh']);
    const nginxP95 = series[0]!;
    // 10 and 5000 users have a p95, 200 has none: two separate segments, two points.
    assert.equal(nginxP95.children.filter((c) => c.name === 'path').length, 2);
    assert.equal(nginxP95.children.filter((c) => c.name === 'circle').length, 2);
    assert.ok(allElements(svg).some((e) => e.name === 'text' && e.text.includes('open model 2000 req/s, tsmesh')));
  });

  it('escapes and formats', () => {
    assert.equal(escapeXml(`<a href="x">&'</a>`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
    assert.equal(fmtMs(1.234), '1.23');
    assert.equal(fmtMs(12.34), '12.3');
    assert.equal(fmtMs(1234.5), '1235');
    assert.equal(fmtMs(undefined), '–');
    assert.throws(() => parseXml('<svg><g></svg>'), /closes <g>/);
    assert.throws(() => parseXml('<svg a="1" a="2"/>'), /duplicate/);
    assert.throws(() => parseXml('<svg>a & b</svg>'), /bare &/);
  });
});
