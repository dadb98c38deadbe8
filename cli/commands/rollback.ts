import type { Command } from 'commander';
import { apiClient, parseRevision, reportFailure, withApiOptions, type ApiFlags } from '../api-options.js';

export function registerRollback(program: Command): void {
  withApiOptions(
    program
      .command('rollback')
      .description("apply an old revision's document again, as a new revision of its service (history keeps both)")
      .argument('<rev>', 'the revision to go back to')
      .option('--comment <text>', 'why (default: "rollback to revision REV")'),
    { json: true },
  ).action(async (rev: string, flags: ApiFlags & { comment?: string }) => {
    try {
      const r = await apiClient(flags).rollback(parseRevision(rev), flags.comment);
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      console.log(`revision ${r.revision} stored for ${r.selector}: the document of revision ${r.rollbackOf}`);
      console.log(r.nodes.length > 0 ? `pushing to ${r.nodes.length} connected prox${r.nodes.length === 1 ? 'y' : 'ies'}: ${r.nodes.join(', ')}` : 'no connected proxy is selected by it');
    } catch (err) {
      reportFailure(err);
    }
  });
}
