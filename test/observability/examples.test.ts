// examples/observability: alert rules and the Prometheus config pass promtool (the rules also
// their unit tests), and the Grafana dashboard is current, parses, and queries only metrics of
// the catalogue (docs/metrics.md) with PromQL that Prometheus accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildDashboard, dashboardExpressions } from '../../examples/observability/dashboard.js';
import { catalogueSeriesNames } from '../../proxy/src/telemetry/metrics-doc.js';
import { metricNames } from '../support/promql-names.js';
import { promtool } from '../support/prometheus.js';
import { repoRoot } from '../support/repo.js';

const dir = join(repoRoot(), 'examples', 'observability');

async function ok(args: string[], cwd = dir): Promise<string> {
  const r = await promtool(args, undefined, cwd);
  assert.equal(r.code, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

test('promtool check rules: alerts.yml', async () => {
  assert.match(await ok(['check', 'rules', 'alerts.yml']), /SUCCESS: 8 rules found/);
});

test('promtool test rules: every alert fires above its threshold and not below', async () => {
  assert.match(await ok(['test', 'rules', 'alerts.test.yml']), /SUCCESS/);
});

test('promtool check config: prometheus.yml (and the rule files it names)', async () => {
  assert.match(await ok(['check', 'config', 'prometheus.yml']), /is valid prometheus config file syntax/);
});

test('the alert rules cover the original report\'s thresholds and use catalogued metrics', async () => {
  const doc = parseYaml(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  const rules = doc.groups.flatMap((g) => g.rules);
  const byName = new Map(rules.map((r) => [r.alert, r.expr]));
  assert.match(byName.get('TsmeshHighLatencyP95')!, /histogram_quantile\(0\.95,[\s\S]*> 0\.5\s*$/);
  assert.match(byName.get('TsmeshHighErrorRate')!, /> 0\.10\s*$/);
  assert.match(byName.get('TsmeshHighCpu')!, /> 0\.8\s*$/);
  assert.match(byName.get('TsmeshHighMemory')!, /> 0\.9\s*$/);
  const catalogue = await catalogueSeriesNames();
  for (const r of rules) {
    for (const name of metricNames(r.expr)) assert.ok(catalogue.has(name) || name === 'up', `${r.alert} uses ${name}, which is not in docs/metrics.md`);
  }
});

test('grafana-dashboard.json is current (npm run examples:dashboard) and parses', () => {
  const committed = readFileSync(join(dir, 'grafana-dashboard.json'), 'utf8');
  assert.equal(committed, `${JSON.stringify(buildDashboard(), null, 2)}\n`, 'grafana-dashboard.json is out of date: run npm run examples:dashboard');
  const dashboard = JSON.parse(committed) as { panels: Array<{ type: string; title: string; targets?: unknown[] }>; templating: { list: unknown[] } };
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 20);
  for (const p of panels) assert.ok(p.targets && p.targets.length > 0, `${p.title} has no query`);
  const titles = panels.map((p) => p.title).join(' | ');
  for (const want of ['Requests/s', 'Success rate', 'Rejections by reason', 'p50 / p95 / p99', 'Retries and retry budget', 'Circuit breakers', 'Outlier ejections', 'health checks', 'Concurrency limit and queue', 'Rate limiting', 'connections', 'Config version', 'Control plane', 'CPU', 'Memory']) {
    assert.ok(titles.toLowerCase().includes(want.toLowerCase()), `no panel about ${want}: ${titles}`);
  }
});

test('every dashboard query names only catalogued metrics and is valid PromQL', async () => {
  const dashboard = buildDashboard();
  const exprs = dashboardExpressions(dashboard);
  const variables = (dashboard.templating as { list: Array<{ definition?: string }> }).list.flatMap((v) => (v.definition ? [v.definition] : []));
  const catalogue = await catalogueSeriesNames();
  for (const expr of exprs) {
    const names = metricNames(expr);
    assert.ok(names.size > 0, `no metric in ${expr}`);
    for (const name of names) assert.ok(catalogue.has(name), `dashboard query uses ${name}, which is not in docs/metrics.md: ${expr}`);
  }
  for (const v of variables) {
    const m = /^label_values\((\w+)/.exec(v);
    assert.ok(m && catalogue.has(m[1]!), `variable query ${v}`);
  }

  // Grafana's variables become what Prometheus would get, then promtool parses each query.
  const concrete = (e: string) => e.replace(/\$__rate_interval|\$__interval/g, '1m').replace(/\$(instance|route|cluster)/g, '.*');
  const tmp = mkdtempSync(join(tmpdir(), 'tsmesh-dashboard-'));
  try {
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: concrete(e) })) }] };
    writeFileSync(join(tmp, 'dashboard-rules.json'), JSON.stringify(rules));
    assert.match(await ok(['check', 'rules', 'dashboard-rules.json'], tmp), new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('metricNames finds the metrics of an expression and nothing else', () => {
  const names = (e: string) => [...metricNames(e)].sort();
  assert.deepEqual(names('sum by (le, route) (rate(a_bucket{x="y{z}", w=~"$v"}[5m])) / on (instance) group_left (version) b_info > 0.5'), ['a_bucket', 'b_info']);
  assert.deepEqual(names('histogram_quantile(0.95, sum without (pod) (rate(x_seconds_bucket[1m]))) > 1e3'), ['x_seconds_bucket']);
  assert.deepEqual(names('up{job="a"} == 0 and on (instance) c unless d offset 5m'), ['c', 'd', 'up']);
  assert.deepEqual(names('count by (version) (tsmesh_config_info)'), ['tsmesh_config_info']);
});
