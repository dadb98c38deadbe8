// A short ladder against the nginx topology (2 gateway instances, real PostgreSQL and Redis,
// real nginx): two small closed steps and an open step, and a well-formed report in all
// three forms. No wall-clock assertions: only that every figure is there.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DETAIL_COLUMNS } from '../bench/ladder/report-markdown.js';
import { runLadder } from '../bench/ladder/run.js';
import type { LadderReport } from '../bench/ladder/types.js';
import { writeReport } from '../bench/ladder/write.js';
import { ERROR_CLASSES } from '../bench/loadgen/index.js';
import { startBacking, startNginxTopology } from '../bench/topologies/index.js';
import { postQuery, request } from './support/gateway-client.js';
import { allElements, parseXml } from './support/xml.js';

describe('nginx topology', () => {
  it('serves the original curl commands through nginx and stops everything', async () => {
    const backing = await startBacking();
    try {
      const topo = await startNginxTopology({ instances: 2, backing, seedDocuments: 300 });
      try {
        const health = await request(`${topo.url}/health`);
        assert.equal(health.status, 200);
        const q = await postQuery(topo.url, { query: 'test' });
        assert.equal(q.status, 200);
        assert.ok(q.json.count > 0);
        // Round-robin: both instances answer.
        const names = new Set<string>();
        for (let i = 0; i < 4; i++) names.add((await request(`${topo.url}/health`)).json.instance);
        assert.deepEqual([...names].sort(), ['gateway-1', 'gateway-2']);
        const counters = await topo.sample!();
        assert.equal(typeof counters, 'object');
      } finally {
        await topo.stop();
      }
      await assert.rejects(request(`${topo.url}/health`), /ECONNREFUSED/);
    } finally {
      await backing.stop();
    }
  });
});

describe('ladder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-ladder-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a short ladder against nginx and writes a well-formed report', async () => {
    const lines: string[] = [];
    const report = await runLadder(
      { topologies: ['nginx'], steps: [2, 5], stepDurationMs: 1000, openRate: 40, openDurationMs: 1000, openMaxConnections: 20, instances: 2, warmupMs: 300, pauseMs: 100, seedDocuments: 500, timeoutMs: 5000 },
      (l) => lines.push(l),
    );
    assert.equal(report.topologies.length, 1);
    const t = report.topologies[0]!;
    assert.equal(t.error, undefined, t.error);
    assert.deepEqual(t.steps.map((s) => [s.kind, s.users]), [['closed', 2], ['closed', 5], ['open', 20]]);
    for (const s of t.steps) {
      assert.ok(s.result.requests > 0);
      assert.ok(s.result.successPct >= 0 && s.result.successPct <= 100);
      for (const c of ERROR_CLASSES) assert.equal(typeof s.result.errors[c], 'number');
    }
    assert.ok(lines.some((l) => l.includes('[nginx] 5 users')));

    const files = writeReport(report, dir);

    // JSON: the same report back.
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as LadderReport;
    assert.deepEqual(json, JSON.parse(JSON.stringify(report)));

    // Markdown: the side-by-side table with the original report's rows, and a detail table
    // with every column and one row per step.
    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /\| users \| original report .* \| nginx success \| nginx p95 ms \| nginx req\/s \| nginx target met \|/);
    for (const [users, text] of [[10, '100 % success'], [100, '95 % success'], [200, 'connection refused'], [500, 'HTTP 499'], [1000, 'overloaded']] as const) {
      assert.match(md, new RegExp(`\\| ${users} \\| [^|]*${text}[^|]* \\| not run \\|`));
    }
    const header = `| ${DETAIL_COLUMNS.join(' | ')} |`;
    assert.ok(md.includes(header), 'detail header');
    const detail = md.split('\n').slice(md.split('\n').indexOf(header) + 2);
    const rows = detail.slice(0, 3).map((l) => l.split(' | ').length);
    assert.deepEqual(rows, [DETAIL_COLUMNS.length, DETAIL_COLUMNS.length, DETAIL_COLUMNS.length]);
    assert.match(detail[0]!, /^\| 2 \| \d+ \| \d+ \| [\d.]+ % \|/);
    assert.match(detail[2]!, /^\| open 40\/s \|/);
    assert.ok(md.includes('ladder-'), 'links the chart');

    // SVG: well-formed XML with one series per topology and the original report's.
    const svg = parseXml(readFileSync(files.svg, 'utf8'));
    assert.equal(svg.name, 'svg');
    assert.equal(svg.attrs.xmlns, 'http://www.w3.org/2000/svg');
    const series = allElements(svg).filter((e) => e.attrs.class === 'series');
    assert.deepEqual(series.map((s) => s.attrs['data-series']).sort(), ['nginx', 'nginx', 'original report']);
    for (const s of series) assert.ok(s.children.some((c) => c.name === 'circle'), `points of ${s.attrs['data-series']}`);
  });

  it('runs a short ladder against the tsmesh topology (edge, sidecars, control plane) and writes a well-formed report', async () => {
    const lines: string[] = [];
    const report = await runLadder(
      { topologies: ['tsmesh'], steps: [2, 5], stepDurationMs: 1000, openRate: 40, openDurationMs: 1000, openMaxConnections: 20, instances: 2, warmupMs: 300, pauseMs: 100, seedDocuments: 500, timeoutMs: 5000, errorPauseMs: 100 },
      (l) => lines.push(l),
    );
    const t = report.topologies[0]!;
    assert.equal(t.error, undefined, `${t.error}\n${lines.join('\n')}`);
    assert.equal(t.name, 'tsmesh');
    assert.match(t.description, /behind a tsmesh sidecar, behind the tsmesh edge/);
    assert.deepEqual(t.steps.map((s) => [s.kind, s.users]), [['closed', 2], ['closed', 5], ['open', 20]]);
    for (const s of t.steps) {
      assert.ok(s.result.requests > 0);
      // A few users on two instances: nothing is refused, reset or rejected.
      assert.equal(s.result.successPct, 100, JSON.stringify(s.result.errors));
      // What the proxies counted themselves: the sidecars' adaptive limits.
      assert.ok(s.server['sidecar limits (sum)']! > 0, JSON.stringify(s.server));
    }
    assert.ok(lines.some((l) => /\[tsmesh\] applied 3 documents through the control plane/.test(l)), lines.join('\n'));
    assert.equal(report.settings.errorPauseMs, 100);

    const files = writeReport(report, dir);
    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /\| users \| original report .* \| tsmesh success \| tsmesh p95 ms \| tsmesh req\/s \| tsmesh target met \|/);
    assert.match(md, /after a failed request \(socket failure or an answer >= 400\) a user pauses 100 ms/);
    const header = `| ${DETAIL_COLUMNS.join(' | ')} |`;
    const detail = md.split('\n').slice(md.split('\n').indexOf(header) + 2);
    assert.deepEqual(detail.slice(0, 3).map((l) => l.split(' | ').length), [DETAIL_COLUMNS.length, DETAIL_COLUMNS.length, DETAIL_COLUMNS.length]);
    assert.match(detail[0]!, /^\| 2 \| \d+ \| \d+ \| 100 % \|.*sidecar limits \(sum\): \d+/);
    const svg = parseXml(readFileSync(files.svg, 'utf8'));
    const series = allElements(svg).filter((e) => e.attrs.class === 'series');
    assert.deepEqual(series.map((s) => s.attrs['data-series']).sort(), ['original report', 'tsmesh', 'tsmesh']);
  });

  it('refuses an unknown topology', async () => {
    await assert.rejects(runLadder({ topologies: ['istio'] }), /unknown topology "istio"; known: nginx, tsmesh/);
  });
});
