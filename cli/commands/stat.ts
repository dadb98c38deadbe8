import { Option, type Command } from 'commander';
import { positiveDurationArg } from '../option-parsers.js';
import { renderJson, renderText, type StatOutput } from '../stat/render.js';
import { runStat } from '../stat/run.js';
import { controlPlaneTargets, DEFAULT_STATUS_PATH, staticTargets, type TargetSource } from '../stat/sources.js';

interface StatFlags {
  admin?: string[];
  server?: string;
  token?: string;
  statusPath: string;
  interval: number;
  timeout: number;
  watch?: boolean;
  json?: boolean;
}

export function registerStat(program: Command): void {
  program
    .command('stat')
    .description(
      'live traffic per route and cluster, read from the proxies\' /metrics: success rate, requests/s, ' +
        'p50/p95/p99 latency and rejections by reason over the last interval (like linkerd viz stat)',
    )
    .option('--admin <address...>', 'admin addresses of proxies to read (host:port or URL), e.g. --admin 127.0.0.1:15000 127.0.0.1:15001')
    .addOption(new Option('--server <url>', 'control plane HTTP API: read every proxy it reports (instead of --admin)').env('TSMESH_SERVER'))
    .addOption(new Option('--token <token>', 'bearer token for the control plane API').env('TSMESH_TOKEN'))
    .option('--status-path <path>', 'path of the control plane\'s proxy status, answering {"proxies":[{"node","adminAddress"}]}', DEFAULT_STATUS_PATH)
    .addOption(new Option('-i, --interval <duration>', 'time between the two scrapes a report compares (and between --watch reports)').argParser(positiveDurationArg).default(2000, '2s'))
    .addOption(new Option('--timeout <duration>', 'give up on a proxy (or the control plane) after this long').argParser(positiveDurationArg).default(2000, '2s'))
    .option('-w, --watch', 'keep reporting every interval, clearing the screen (Ctrl-C stops)')
    .option('--json', 'one JSON document per report (one per line with --watch)')
    .addHelpText(
      'after',
      '\nSuccess rate counts responses below 500; rejections are the responses the proxy made itself ' +
        '(x-tsmesh-reason), by reason. Latency quantiles are interpolated in the histogram buckets, as ' +
        'PromQL histogram_quantile does. Several proxies are summed per route and cluster.',
    )
    .action(async (flags: StatFlags) => {
      let source: TargetSource;
      if (flags.admin?.length) source = staticTargets(flags.admin);
      else if (flags.server) source = controlPlaneTargets(flags.server, flags.token, flags.statusPath, flags.timeout);
      else throw new Error('stat: give proxies with --admin ADDRESS... or a control plane with --server URL (or TSMESH_SERVER)');

      const clear = flags.watch && !flags.json && process.stdout.isTTY;
      let lastRead = 0;
      await runStat({
        source,
        intervalMs: flags.interval,
        timeoutMs: flags.timeout,
        watch: flags.watch ?? false,
        report: (out: StatOutput) => {
          lastRead = out.proxies;
          if (flags.json) process.stdout.write(`${renderJson(out)}\n`);
          else process.stdout.write(`${clear ? '\x1b[2J\x1b[H' : ''}${renderText(out)}\n${flags.watch && !clear ? '\n' : ''}`);
        },
      });
      if (lastRead === 0) {
        process.stderr.write('tsmesh stat: no proxy could be read\n');
        process.exitCode = 1;
      }
    });
}
