import type { Command } from 'commander';
import { loadConfigFile } from '../../proxy/src/config/load.js';
import { ProxyStartError, startProxy } from '../../proxy/src/runtime.js';

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description(
      'run the proxy (sidecar or edge) on a YAML config file. The file is validated first: every problem is listed by ' +
        'path and the command exits non-zero. Once listening it prints the bound addresses. SIGTERM or SIGINT drains ' +
        '(/ready turns 503, traffic is served for drain.delay, then listeners close and in-flight requests finish ' +
        'within drain.timeout) and exits 0; a second signal exits at once.',
    )
    .requiredOption('-c, --config <file>', 'YAML config file (listeners, routes, clusters, admin, drain, accessLog)')
    .option('--config-version <label>', 'version label reported by /config_dump and tsmesh_config_info', 'file')
    .action(async (opts: { config: string; configVersion: string }) => {
      const loaded = await loadConfigFile(opts.config);
      if (!loaded.ok) {
        console.error(`${opts.config}: ${loaded.errors.length} problem${loaded.errors.length === 1 ? '' : 's'}`);
        for (const e of loaded.errors) console.error(`  ${e}`);
        process.exitCode = 1;
        return;
      }
      let proxy;
      try {
        proxy = await startProxy({ config: loaded.value, version: opts.configVersion, source: 'file' });
      } catch (err) {
        if (err instanceof ProxyStartError) {
          console.error(`${opts.config}: the proxy could not start`);
          for (const e of err.errors) console.error(`  ${e}`);
        } else console.error(`tsmesh proxy: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
        return;
      }
      for (const [name, address] of Object.entries(proxy.addresses)) {
        console.log(name === 'admin' ? `admin http://${address}` : `listener ${name} http://${address}`);
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          console.error(`tsmesh proxy: ${signal} again, exiting now`);
          process.exit(1);
        }
        stopping = true;
        console.log(`tsmesh proxy: ${signal}: draining`);
        void proxy
          .drain()
          .then(() => proxy.close())
          .then(() => {
            console.log('tsmesh proxy: drained, bye');
            process.exit(0);
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
