import type { Command } from 'commander';
import { apiClient, parseRevision, reportFailure, withApiOptions, type ApiFlags } from '../api-options.js';

export function registerDiff(program: Command): void {
  withApiOptions(
    program
      .command('diff')
      .description('what changed between two revisions (REV to REV2), or, with one revision, what it changed in its service; by path, "~" changed, "+" added, "-" removed')
      .argument('<rev>', 'revision number (the older one)')
      .argument('[rev2]', 'revision number to compare with'),
    { json: true },
  ).action(async (rev: string, rev2: string | undefined, flags: ApiFlags) => {
    try {
      const d = await apiClient(flags).diff(parseRevision(rev), rev2 === undefined ? undefined : parseRevision(rev2));
      if (flags.json) {
        console.log(JSON.stringify(d, null, 2));
        return;
      }
      console.log(`revision ${d.from ?? '(none)'} -> ${d.to}: ${d.lines.length === 0 ? 'no changes' : `${d.lines.length} change${d.lines.length === 1 ? '' : 's'}`}`);
      for (const l of d.lines) console.log(l);
    } catch (err) {
      reportFailure(err);
    }
  });
}
