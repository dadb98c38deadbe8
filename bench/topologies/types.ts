// What a benchmark topology is: something started on this machine that serves the gateway
// API at one URL, in front of the shared PostgreSQL and Redis. The ladder runs the same
// load against each topology; adding one (phase 2: tsmesh edge + sidecars) is one module
// implementing StartTopology and one line in ./index.ts.

export interface BackingServices {
  readonly databaseUrl: string;
  readonly redisUrl: string;
}

export interface TopologyOptions {
  /** Gateway instances behind the entry point (the original system had 5). */
  readonly instances: number;
  readonly backing: BackingServices;
  /** Rows generated into the gateway's documents table on first start. */
  readonly seedDocuments?: number;
  /** Progress lines for the operator. */
  readonly log?: (line: string) => void;
}

export interface Topology {
  readonly name: string;
  /** The one entry point clients call, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** One line saying what runs, for reports. */
  readonly description: string;
  /** Counters the topology keeps itself (e.g. nginx's 499s), since the previous call. */
  sample?(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export type StartTopology = (opts: TopologyOptions) => Promise<Topology>;
