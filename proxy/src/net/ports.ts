// Loopback port helpers shared by the embedded PostgreSQL, the benchmarks and the tests: the
// one copy of "a port nobody listens on" and "does this port accept a connection yet".
import { connect, createServer } from 'node:net';

/** A free TCP port on 127.0.0.1 (released before return; callers bind it right away). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
