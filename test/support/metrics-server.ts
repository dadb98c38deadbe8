// An admin-like HTTP server on a free loopback port serving a prom-client registry on
// /metrics, as a proxy's admin listener does: for tests of scrapers (tsmesh stat, Prometheus)
// before, and besides, a running proxy.
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** host:port, as an admin address is written. */
  readonly address: string;
  readonly port: number;
  /** Scrapes answered so far. */
  readonly scrapes: number;
  /** Serves another registry from now on (e.g. a restarted proxy's). */
  setRegistry(registry: Registry): void;
  close(): Promise<void>;
}

/** `afterScrape(n)` runs after the n-th scrape (1-based) was answered. */
export async function startMetricsServer(registry: Registry, afterScrape?: (n: number) => void): Promise<MetricsServer> {
  let current = registry;
  let scrapes = 0;
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    current.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': current.contentType }).end(text, () => {
          scrapes++;
          afterScrape?.(scrapes);
        });
      },
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    get scrapes() {
      return scrapes;
    },
    setRegistry(r) {
      current = r;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
