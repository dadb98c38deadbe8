// npm run docs:metrics — writes docs/metrics.md from the metric registries
// (proxy/src/telemetry/metrics-doc.ts); a test fails when the committed file differs.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricsDoc } from '../proxy/src/telemetry/metrics-doc.js';
import { repoRoot } from '../test/support/repo.js';

const file = join(repoRoot(), 'docs', 'metrics.md');
writeFileSync(file, await metricsDoc());
console.log(`wrote ${file}`);
