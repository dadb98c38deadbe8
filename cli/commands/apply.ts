import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { apiClient, reportFailure, withApiOptions, type ApiFlags } from '../api-options.js';

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerApply(program: Command): void {
  withApiOptions(
    program
      .command('apply')
      .description('store a config document (a proxy config plus "selector: gateway-*") as a new revision and push it to the proxies it selects; a refused document prints every problem and exits 1')
      .requiredOption('-f, --file <file>', 'the YAML document ("-" reads standard input)')
      .option('--comment <text>', 'why, kept with the revision in history'),
    { json: true },
  ).action(async (flags: ApiFlags & { file: string; comment?: string }) => {
    let text: string;
    try {
      text = await readInput(flags.file);
    } catch (err) {
      reportFailure(err, flags.file);
      return;
    }
    try {
      // Sent as text so that YAML syntax errors come back with their line and column.
      const r = await apiClient(flags).apply(text, flags.comment);
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      console.log(`revision ${r.revision} stored for ${r.selector} (version ${r.version})`);
      console.log(r.nodes.length > 0 ? `pushing to ${r.nodes.length} connected prox${r.nodes.length === 1 ? 'y' : 'ies'}: ${r.nodes.join(', ')}` : 'no connected proxy is selected by it yet');
      for (const w of r.warnings) console.log(`warning: ${w}`);
    } catch (err) {
      reportFailure(err, flags.file);
    }
  });
}
