// Helpers for end-to-end resilience tests: a proxy in front of fault-injecting upstreams, its
// /metrics read over HTTP from the admin listener (what Prometheus sees, not the registry
// object), and counts taken at the upstreams.
import { request } from 'node:http';
import type { ProxyRuntime } from '../../proxy/src/runtime.js';
import { parsePromText, sumOf, type Sample } from '../../proxy/src/telemetry/prom-text.js';
import type { FaultUpstream } from './fault-upstream.js';
import { httpGet, type SimpleResponse } from './proxy.js';

export interface Scrape {
  readonly samples: readonly Sample[];
  /** Sum of the samples named `name` whose labels include `labels`; 0 when none. */
  value(name: string, labels?: Readonly<Record<string, string>>): number;
}

/** GET /metrics on the proxy's admin listener, parsed strictly. */
export function scrape(proxy: ProxyRuntime): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxy.adminPort, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        try {
          const { samples } = parsePromText(text);
          resolve({ samples, value: (name, labels = {}) => sumOf(samples, name, labels) });
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** One metric value, scraped now. */
export async function metric(proxy: ProxyRuntime, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  return (await scrape(proxy)).value(name, labels);
}

/** Requests the upstreams saw (health checks excluded). */
export function upstreamRequests(upstreams: readonly FaultUpstream[]): number {
  return upstreams.reduce((n, u) => n + u.stats.requests, 0);
}

/** Sends `n` requests at once (each on its own connection) and resolves with all answers in order. */
export function concurrent(port: number, n: number, path: string, opts: Parameters<typeof httpGet>[2] = {}): Promise<SimpleResponse[]> {
  return Promise.all(Array.from({ length: n }, () => httpGet(port, path, opts)));
}

/** Sends `n` requests one after the other. */
export async function sequential(port: number, n: number, path: string, opts: Parameters<typeof httpGet>[2] = {}): Promise<SimpleResponse[]> {
  const out: SimpleResponse[] = [];
  for (let i = 0; i < n; i++) out.push(await httpGet(port, path, opts));
  return out;
}

/** Count of answers by `x-tsmesh-reason` (`upstream:<status>` for answers the upstream made). */
export function byReason(responses: readonly SimpleResponse[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of responses) {
    const reason = r.headers['x-tsmesh-reason'];
    const key = typeof reason === 'string' ? reason : `upstream:${r.status}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
