// The ladder's report as data: what the JSON file holds and the Markdown/SVG are made from.
import type { LoadResult } from '../loadgen/index.js';

export interface LadderSettings {
  readonly topologies: readonly string[];
  /** Closed-model steps: concurrent users. */
  readonly steps: readonly number[];
  readonly stepDurationMs: number;
  /** Open-model step: requests per second (0: none). */
  readonly openRate: number;
  readonly openDurationMs: number;
  readonly openMaxConnections: number;
  readonly instances: number;
  readonly timeoutMs: number;
  /**
   * Closed model: how long a user waits after a failed request before its next one: a socket
   * failure (refused, reset, time-out) or an error answer (status >= 400, tsmesh's 503/429
   * included), what k6 counts in http_req_failed. 0 like k6, whose VUs loop at once; the
   * phase-1 runs paused 100 ms after socket failures only.
   */
  readonly errorPauseMs: number;
  /**
   * Closed model: each step's users first run this long unrecorded, on the connections the step
   * then measures (0, the default: like k6's constant-vus, the step's record starts with all its
   * users connecting at once).
   */
  readonly stepWarmupMs: number;
  readonly distinctQueries: number;
  readonly warmupMs: number;
  readonly pauseMs: number;
  readonly seedDocuments: number;
  /** Load generator in a child process (true) or in the ladder's own process. */
  readonly childLoadgen: boolean;
}

export interface StepResult {
  readonly kind: 'closed' | 'open';
  /** Closed: users; open: the connection bound. */
  readonly users: number;
  /** Open model only. */
  readonly rate?: number;
  readonly result: LoadResult;
  /** What the topology counted itself during the step (e.g. nginx 499s, error.log causes). */
  readonly server: Record<string, number>;
}

export interface TopologyRun {
  readonly name: string;
  readonly description: string;
  readonly steps: readonly StepResult[];
  /** Set when the topology could not be started or failed mid-run; steps holds what ran. */
  readonly error?: string;
}

export interface LadderReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly node: string;
    readonly platform: string;
    /** Linux net.core.somaxconn: the cap on every listen queue (a listener's backlog is cut to it). */
    readonly somaxconn?: number;
  };
  readonly settings: LadderSettings;
  readonly topologies: readonly TopologyRun[];
}
