// More descriptors for one listening socket, so that a busy event loop accepts more than one
// connection per poll. libuv 1.46 (Node 20) accepts one connection each time epoll reports the
// listening descriptor, and a loop saturated by thousands of ready connections polls about
// once per 1024 events: a few hundred accepts a second while clients pile up in the kernel's
// accept queue (docs/performance.md). Each extra descriptor is reported, and accepts, on its
// own. Node 20 has no dup() and no SO_REUSEPORT (reusePort came in 22.12), but a handle sent
// over an IPC channel arrives as a new descriptor of the same socket: a helper process sends
// each one straight back.
import { fork } from 'node:child_process';
import type { Server } from 'node:net';

const ECHO_SCRIPT = new URL('./handle-echo.js', import.meta.url);

/** What net.Server.listen() takes to listen on an existing socket. */
export type ListenHandle = object;

/** Closes a descriptor that will not be listened on. */
export function closeListenHandle(handle: ListenHandle): void {
  (handle as { close?: () => void }).close?.();
}

/**
 * `count` new descriptors of `server`'s listening socket, as handles to pass to another
 * server's listen(). Rejects (and leaves nothing behind) when they cannot be made.
 */
export async function duplicateListenHandles(server: Server, count: number, timeoutMs = 5000): Promise<ListenHandle[]> {
  const handle = (server as unknown as { _handle?: object | null })._handle;
  if (!handle) throw new Error('the server is not listening');
  if (count <= 0) return [];
  // No execArgv: a parent run with --inspect or profiling flags must not pass them on.
  const child = fork(ECHO_SCRIPT, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json', execArgv: [] });
  const got: ListenHandle[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no descriptors from the helper process within ${timeoutMs} ms`)), timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the helper process exited (${code ?? signal})`));
      });
      child.on('message', (message: unknown, h: unknown) => {
        if (message !== 'dup' || h === undefined) return;
        got.push(h as ListenHandle);
        if (got.length === count) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (let i = 0; i < count; i++) child.send('dup', handle as never);
    });
    return got;
  } catch (err) {
    for (const h of got) closeListenHandle(h);
    throw err;
  } finally {
    child.removeAllListeners();
    child.on('error', () => {});
    child.disconnect();
  }
}
