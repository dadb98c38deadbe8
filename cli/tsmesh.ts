#!/usr/bin/env node
// The tsmesh command: one binary for the proxy (sidecar or edge), the control plane and
// the operator's tools. Each subcommand lives in cli/commands/ and registers itself here.
import { Command } from 'commander';
import { registerValidate } from './commands/validate.js';
import { registerControlPlane } from './commands/control-plane.js';
import { registerApply } from './commands/apply.js';
import { registerStatus } from './commands/status.js';
import { registerHistory } from './commands/history.js';
import { registerDiff } from './commands/diff.js';
import { registerRollback } from './commands/rollback.js';
import { registerGateway } from './commands/gateway.js';
import { registerStat } from './commands/stat.js';
import { registerProxy } from './commands/proxy.js';
import { registerDemo } from './commands/demo.js';

const program = new Command('tsmesh')
  .description('A service-mesh sidecar/edge proxy and its gRPC control plane')
  .showHelpAfterError()
  .enablePositionalOptions();

registerValidate(program);
registerControlPlane(program);
registerApply(program);
registerStatus(program);
registerHistory(program);
registerDiff(program);
registerRollback(program);
registerGateway(program);
registerStat(program);
registerProxy(program);
registerDemo(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`tsmesh: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
