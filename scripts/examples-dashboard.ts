// npm run examples:dashboard — writes examples/observability/grafana-dashboard.json from
// examples/observability/dashboard.ts; a test fails when the committed JSON differs.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDashboard } from '../examples/observability/dashboard.js';
import { repoRoot } from '../test/support/repo.js';

const file = join(repoRoot(), 'examples', 'observability', 'grafana-dashboard.json');
writeFileSync(file, `${JSON.stringify(buildDashboard(), null, 2)}\n`);
console.log(`wrote ${file}`);
