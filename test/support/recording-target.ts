// A small real ConfigTarget for tests of config sources (control-plane client, disk cache):
// it binds every listener's address for real (plain TCP, no HTTP), so an address it cannot
// bind makes `apply` fail and change nothing, like the proxy; and it records what it applied.
import { createServer, type Server } from 'node:net';
import type { AppliedConfig, ConfigSource, ConfigTarget } from '../../proxy/src/config/target.js';
import type { ProxyConfig } from '../../proxy/src/config/schema.js';
import type { ValidationResult } from '../../proxy/src/config/validate.js';
import { parseHostPort } from '../../proxy/src/config/units.js';

export class RecordingTarget implements ConfigTarget {
  current: AppliedConfig | undefined;
  readonly applied: AppliedConfig[] = [];
  readonly refused: Array<{ version: string; errors: string[] }> = [];
  private readonly bound = new Map<string, Server>();

  async apply(config: ProxyConfig, meta: { version: string; source: ConfigSource }): Promise<ValidationResult<AppliedConfig>> {
    const wanted = new Map(config.listeners.map((l) => [l.address, l.name]));
    const opened: Array<[string, Server]> = [];
    const errors: string[] = [];
    for (const [address, name] of wanted) {
      if (this.bound.has(address)) continue;
      const hp = parseHostPort(address)!;
      const server = createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(hp.port, hp.host, () => resolve());
        });
        opened.push([address, server]);
      } catch (err) {
        errors.push(`listeners.${name}.address: cannot bind ${address}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) {
      for (const [, s] of opened) s.close();
      this.refused.push({ version: meta.version, errors });
      return { ok: false, errors };
    }
    for (const [address, s] of opened) this.bound.set(address, s);
    for (const [address, s] of [...this.bound]) {
      if (!wanted.has(address)) {
        s.close();
        this.bound.delete(address);
      }
    }
    const applied: AppliedConfig = { version: meta.version, source: meta.source, config, appliedAt: new Date() };
    this.current = applied;
    this.applied.push(applied);
    return { ok: true, value: applied };
  }

  close(): void {
    for (const s of this.bound.values()) s.close();
    this.bound.clear();
  }
}
