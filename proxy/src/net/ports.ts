// Loopback port helpers shared by the embedded PostgreSQL, the benchmarks and the tests: the
// one copy of "a port nobody listens on" and "does this port accept a connection yet".
import { connect, createServer, type Server } from 'node:net';

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

/**
 * n distinct free ports on 127.0.0.1. Each is held until all are picked: freePort() called n
 * times can hand out the same port twice, since the kernel may reuse a port just released.
 */
export async function freePorts(n: number): Promise<number[]> {
  const held: HeldPort[] = [];
  try {
    for (let i = 0; i < n; i++) held.push(await holdPort('127.0.0.1', 0));
    return held.map((h) => h.port);
  } finally {
    await Promise.all(held.map((h) => h.release()));
  }
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

/** A port kept bound until released. */
export interface HeldPort {
  readonly host: string;
  readonly port: number;
  /** Closes the listener: the port is free for whoever binds it next. */
  release(): Promise<void>;
}

/**
 * Binds host:port (port 0: a free one) and keeps it bound until release(). Ports picked one
 * after another while the earlier ones are still held cannot come out the same, as they can
 * with freePort(). Rejects with the listen error (err.code EADDRINUSE when the port is taken).
 */
export function holdPort(host: string, port: number): Promise<HeldPort> {
  return new Promise((resolve, reject) => {
    // A client that connects meanwhile (a health probe, a browser) is closed at once: close()
    // waits for open connections, so one left open would hold release() forever.
    const s: Server = createServer((socket) => socket.destroy());
    s.once('error', reject);
    s.listen(port, host, () => {
      const bound = (s.address() as { port: number }).port;
      let released: Promise<void> | undefined;
      resolve({ host, port: bound, release: () => (released ??= new Promise<void>((r) => s.close(() => r()))) });
    });
  });
}
