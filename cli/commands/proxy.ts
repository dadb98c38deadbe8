import { Option, type Command } from 'commander';
import { loadProxyFile } from '../../proxy/src/config/bootstrap.js';
import { ProxyStartError } from '../../proxy/src/runtime.js';
import { runControlPlaneProxy, runStaticProxy, type RunningProxy } from '../../proxy/src/boot.js';

interface ProxyFlags {
  config: string;
  configVersion: string;
  node?: string;
  token?: string;
  controlPlane?: string;
  cacheDir?: string;
}

function fields(f: Record<string, unknown> | undefined): string {
  if (!f) return '';
  const parts = Object.entries(f)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

function log(level: 'info' | 'warn', msg: string, f?: Record<string, unknown>): void {
  const line = `tsmesh proxy: ${msg}${fields(f)}`;
  if (level === 'warn') console.error(line);
  else console.log(line);
}

function printListeners(proxy: RunningProxy): void {
  for (const [name, address] of Object.entries(proxy.runtime.addresses)) {
    if (name !== 'admin') console.log(`listener ${name} http://${address}`);
  }
}

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description(
      'run the proxy (sidecar or edge). --config is either a full config file (listeners, routes, clusters) or a ' +
        'bootstrap file (admin and controlPlane only): the proxy then takes its config from the control plane, ' +
        'ACKs or NACKs each snapshot, keeps the last one under controlPlane.cacheDir and boots from it while the ' +
        'control plane is unreachable; /ready answers 503 until a config is applied. Files are validated first: ' +
        'every problem is listed by path and the command exits non-zero. It prints the bound addresses. SIGTERM or ' +
        'SIGINT closes the control-plane stream and drains (/ready turns 503, traffic is served for drain.delay, then ' +
        'listeners close and in-flight requests finish within drain.timeout) and exits 0; a second signal exits at once.',
    )
    .requiredOption('-c, --config <file>', 'YAML config file, or bootstrap file (admin + controlPlane: {address, node, token, cacheDir})')
    .option('--config-version <label>', 'version label of a static config file, reported by /config_dump and tsmesh_config_info', 'file')
    .addOption(new Option('--node <name>', "this proxy's node name (overrides controlPlane.node; e.g. --node $(POD_NAME)); also its name in global rate limits").env('TSMESH_NODE'))
    .addOption(new Option('--token <token>', "the control plane's bearer token (overrides controlPlane.token)").env('TSMESH_TOKEN'))
    .addOption(new Option('--control-plane <address>', "the control plane's gRPC address host:port (overrides controlPlane.address; makes the file a bootstrap)").env('TSMESH_CONTROL_PLANE'))
    .addOption(new Option('--cache-dir <dir>', 'where the last applied snapshot is kept (overrides controlPlane.cacheDir)').env('TSMESH_CACHE_DIR'))
    .action(async (opts: ProxyFlags) => {
      const loaded = await loadProxyFile(opts.config, { address: opts.controlPlane, node: opts.node, token: opts.token, cacheDir: opts.cacheDir });
      if (!loaded.ok) {
        console.error(`${opts.config}: ${loaded.errors.length} problem${loaded.errors.length === 1 ? '' : 's'}`);
        for (const e of loaded.errors) console.error(`  ${e}`);
        process.exitCode = 1;
        return;
      }
      const { kind, config } = loaded.value;
      let proxy: RunningProxy | undefined;
      let stopping = false;
      const shutdown = (p: RunningProxy) => {
        void p.shutdown().then(
          () => {
            console.log('tsmesh proxy: drained, bye');
            process.exit(0);
          },
          (err: unknown) => {
            console.error(`tsmesh proxy: ${err instanceof Error ? err.message : String(err)}`);
            process.exit(1);
          },
        );
      };
      // Registered before the first config is awaited: a pod stopped while it waits exits cleanly too.
      const stop = (signal: string) => {
        if (stopping) {
          console.error(`tsmesh proxy: ${signal} again, exiting now`);
          process.exit(1);
        }
        stopping = true;
        console.log(`tsmesh proxy: ${signal}: draining`);
        if (proxy) shutdown(proxy);
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      try {
        if (kind === 'static') {
          const p = await runStaticProxy(config, { version: opts.configVersion, proxyId: opts.node, log });
          proxy = p;
          for (const [name, address] of Object.entries(p.runtime.addresses)) {
            console.log(name === 'admin' ? `admin http://${address}` : `listener ${name} http://${address}`);
          }
        } else {
          const cp = config.controlPlane!;
          const p = await runControlPlaneProxy(config, {
            log,
            onAdmin: (address) => {
              console.log(`admin http://${address}`);
              console.log(`tsmesh proxy: node ${cp.node}: waiting for a config from the control plane at ${cp.address}${cp.cacheDir ? ` (disk cache ${cp.cacheDir})` : ''}`);
            },
          });
          proxy = p;
          const boot = p.controlPlane!;
          const cur = p.runtime.current;
          if (cur) console.log(`tsmesh proxy: config version ${cur.version} from ${cur.source}${boot.bootedFrom === 'disk-cache' ? ` (${boot.reason})` : ''}`);
          else console.error(`tsmesh proxy: no config yet (${boot.reason || 'the control plane sent none'}); /ready answers 503 until the control plane sends one`);
          printListeners(p);
          let shown = cur?.version;
          boot.client.onStatus((s) => {
            if (s.lastAckedVersion === undefined || s.lastAckedVersion === shown) return;
            shown = s.lastAckedVersion;
            printListeners(p);
          });
        }
      } catch (err) {
        if (err instanceof ProxyStartError) {
          console.error(`${opts.config}: the proxy could not start`);
          for (const e of err.errors) console.error(`  ${e}`);
        } else console.error(`tsmesh proxy: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
        return;
      }
      if (stopping) shutdown(proxy);
    });
}
