import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../test/support/repo.js';
import { controlPlaneSections, LABELS, metricsDoc, proxySections } from './metrics-doc.js';

test('docs/metrics.md is up to date (npm run docs:metrics)', async () => {
  const committed = readFileSync(join(repoRoot(), 'docs', 'metrics.md'), 'utf8');
  const fresh = await metricsDoc();
  if (committed !== fresh) {
    const a = committed.split('\n');
    const b = fresh.split('\n');
    const i = a.findIndex((line, n) => line !== b[n]);
    assert.fail(`docs/metrics.md is out of date: run npm run docs:metrics (first difference at line ${i + 1}:\n  committed: ${a[i]}\n  expected:  ${b[i]})`);
  }
});

test('every proxy metric follows the naming rules and uses only documented, low-cardinality labels', async () => {
  const [own, runtime] = await proxySections();
  const allowed = new Set(['listener', 'route', 'cluster', 'endpoint', 'code', 'reason', 'resource', 'result', 'state', 'version', 'source']);
  for (const m of own!.metrics!) {
    assert.match(m.name, /^tsmesh_[a-z0-9_]+$/, m.name);
    if (m.type === 'counter') assert.match(m.name, /_total$/, `${m.name}: a counter ends in _total`);
    else assert.doesNotMatch(m.name, /_total$/, `${m.name}: only counters end in _total`);
    if (m.type === 'histogram') assert.match(m.name, /_(seconds|bytes)$/, `${m.name}: a histogram carries its unit`);
    assert.doesNotMatch(m.name, /_(ms|milliseconds|us|kb|mb)(_|$)/, `${m.name}: base units only`);
    assert.ok(m.help.length > 10, `${m.name}: needs a meaningful help text`);
    for (const l of m.labels) assert.ok(allowed.has(l), `${m.name}: label "${l}" is not one of the low-cardinality labels`);
  }
  for (const m of [...own!.metrics!, ...runtime!.metrics!]) for (const l of m.labels) assert.ok(LABELS[l], `label "${l}" of ${m.name} is not described in metrics-doc.ts LABELS`);
});

test('every control-plane metric follows the same naming rules, with the tsmesh_cp_ prefix and described labels', () => {
  const [cp] = controlPlaneSections();
  assert.ok(cp!.metrics!.length >= 7);
  for (const m of cp!.metrics!) {
    assert.match(m.name, /^tsmesh_cp_[a-z0-9_]+$/, m.name);
    if (m.type === 'counter') assert.match(m.name, /_total$/, `${m.name}: a counter ends in _total`);
    else assert.doesNotMatch(m.name, /_total$/, `${m.name}: only counters end in _total`);
    if (m.type === 'histogram') assert.match(m.name, /_(seconds|bytes)$/, `${m.name}: a histogram carries its unit`);
    assert.ok(m.help.length > 10, `${m.name}: needs a meaningful help text`);
    for (const l of m.labels) assert.ok(LABELS[l], `label "${l}" of ${m.name} is not described in metrics-doc.ts LABELS`);
  }
});
