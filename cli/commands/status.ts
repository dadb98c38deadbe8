import type { Command } from 'commander';
import { apiClient, reportFailure, since, table, withApiOptions, type ApiFlags } from '../api-options.js';

export function registerStatus(program: Command): void {
  withApiOptions(
    program
      .command('status')
      .description('the proxies connected to the control plane (any replica): their service, the version they run, ACK/NACK state, admin address and last NACK error'),
    { json: true },
  ).action(async (flags: ApiFlags) => {
    try {
      const st = await apiClient(flags).status();
      if (flags.json) {
        console.log(JSON.stringify(st, null, 2));
        return;
      }
      if (st.proxies.length === 0) console.log('no proxies connected');
      else {
        console.log(
          table(
            ['NODE', 'SERVICE', 'VERSION', 'STATE', 'CONNECTED', 'REPLICA', 'ADMIN', 'LAST NACK'],
            st.proxies.map((p) => [
              p.node,
              p.selector ?? '-',
              p.version || '-',
              p.state,
              since(p.connectedSince),
              p.replica,
              p.adminAddress ?? '-',
              p.lastError ? `version ${p.nackedVersion}: ${p.lastError}` : '-',
            ]),
          ),
        );
      }
      const alive = st.replicas.filter((r) => r.alive);
      console.log(`\n${alive.length} replica${alive.length === 1 ? '' : 's'}: ${alive.map((r) => `${r.replica} (grpc ${r.grpcAddress}, http ${r.httpAddress})`).join(', ')}`);
    } catch (err) {
      reportFailure(err);
    }
  });
}
