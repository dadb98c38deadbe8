// Writes the three forms of a ladder report next to each other.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { renderMarkdown } from './report-markdown.js';
import { renderSvg } from './report-svg.js';
import type { LadderReport } from './types.js';

export interface WrittenReport {
  readonly markdown: string;
  readonly json: string;
  readonly svg: string;
}

export function writeReport(report: LadderReport, outDir: string): WrittenReport {
  mkdirSync(outDir, { recursive: true });
  const stamp = report.startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace('T', '-');
  const base = join(outDir, `ladder-${stamp}`);
  const files = { markdown: `${base}.md`, json: `${base}.json`, svg: `${base}.svg` };
  writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(files.svg, renderSvg(report));
  writeFileSync(files.markdown, renderMarkdown(report, basename(files.svg)));
  return files;
}
