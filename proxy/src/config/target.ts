// What a config source (file, control-plane stream, disk cache) applies a config to: the
// running proxy. `apply` swaps the snapshot atomically or changes nothing and lists why
// (e.g. a listener address it cannot bind), which the control-plane client sends as a NACK.
import type { ProxyConfig } from './schema.js';
import type { ValidationResult } from './validate.js';

export type ConfigSource = 'file' | 'control-plane' | 'disk-cache';

export interface AppliedConfig {
  readonly version: string;
  readonly source: ConfigSource;
  readonly config: ProxyConfig;
  readonly appliedAt: Date;
}

export interface ConfigTarget {
  apply(config: ProxyConfig, meta: { version: string; source: ConfigSource }): Promise<ValidationResult<AppliedConfig>>;
  readonly current: AppliedConfig | undefined;
}
