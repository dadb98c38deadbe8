import type { Command } from 'commander';
import { loadConfigFile } from '../../proxy/src/config/load.js';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check a proxy config file; lists every problem by path and exits non-zero if there is one')
    .argument('<file>', 'YAML config file')
    .option('--quiet', 'print nothing when the file is valid')
    .action(async (file: string, opts: { quiet?: boolean }) => {
      const result = await loadConfigFile(file);
      if (!result.ok) {
        console.error(`${file}: ${result.errors.length} problem${result.errors.length === 1 ? '' : 's'}`);
        for (const e of result.errors) console.error(`  ${e}`);
        process.exitCode = 1;
        return;
      }
      if (!opts.quiet) {
        const c = result.value;
        const routes = c.listeners.reduce((n, l) => n + l.routes.length, 0);
        console.log(`${file}: valid (${c.listeners.length} listeners, ${routes} routes, ${c.clusters.length} clusters)`);
      }
    });
}
