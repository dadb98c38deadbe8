import type { Command } from 'commander';
import { apiClient, reportFailure, table, withApiOptions, type ApiFlags } from '../api-options.js';

export function registerHistory(program: Command): void {
  withApiOptions(
    program
      .command('history')
      .description('the stored revisions, newest first: number, time, author, service (selector) and comment')
      .option('--selector <glob>', 'only the revisions of this service (its selector, as written)')
      .option('--limit <n>', 'at most this many revisions', (v) => {
        if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--limit: "${v}" is not a positive number`);
        return Number(v);
      }, 20),
    { json: true },
  ).action(async (flags: ApiFlags & { selector?: string; limit: number }) => {
    try {
      const h = await apiClient(flags).history({ selector: flags.selector, limit: flags.limit });
      if (flags.json) {
        console.log(JSON.stringify(h, null, 2));
        return;
      }
      if (h.revisions.length === 0) {
        console.log('no revisions');
        return;
      }
      console.log(
        table(
          ['REVISION', 'TIME', 'AUTHOR', 'SERVICE', 'COMMENT'],
          h.revisions.map((r) => [String(r.revision), r.createdAt.replace(/\.\d+Z$/, 'Z'), r.author, r.selector, r.comment + (r.rollbackOf ? ` (rollback of ${r.rollbackOf})` : '')]),
        ),
      );
    } catch (err) {
      reportFailure(err);
    }
  });
}
