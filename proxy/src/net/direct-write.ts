// Writes a buffer straight to a socket's handle when the stream has nothing queued, as
// net.Socket itself does at the end of its Writable path, without that path: no Writable
// state machine, no write request object per write, and no afterWrite tick (a nextTick per
// write, which made every read callback run the tick queue). On loopback and on any socket
// with room in its kernel buffer the write completes at once; when it does not, libuv keeps
// the rest queued in order ahead of anything written later, and the writer reports it like a
// full stream: write() returns false and `onDrained` runs once everything has gone out.
//
// The handle's writeBuffer and the stream_wrap binding are not public API, so both are
// feature-checked; when either is missing (or the socket is not a plain connected stream),
// write() is socket.write(). A test checks the fast path is in use on the running Node.
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

interface WriteReq {
  handle: unknown;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  buffer: Buffer | null;
  writer: DirectWriter | undefined;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface WritableHandle {
  writeBuffer(req: WriteReq, buf: Buffer): number;
}

function loadBinding(): StreamWrapBinding | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding('stream_wrap') as Partial<StreamWrapBinding>;
    if (typeof binding.WriteWrap === 'function' && binding.streamBaseState instanceof Int32Array && typeof binding.kLastWriteWasAsync === 'number') {
      return binding as StreamWrapBinding;
    }
  } catch {
    // No process.binding (a future Node, or a policy that forbids it): streams only.
  }
  return undefined;
}

const binding = process.env.TSMESH_STREAM_WRITES === '1' ? undefined : loadBinding();
const writeState = binding?.streamBaseState;
const LAST_WRITE_WAS_ASYNC = binding?.kLastWriteWasAsync ?? 0;

/**
 * A write request completed at once never reaches C++ as a request, so one object serves
 * every such write; it is replaced only when a write goes asynchronous and libuv keeps it.
 */
let spare: WriteReq | undefined;

function takeReq(): WriteReq {
  const req = spare ?? new binding!.WriteWrap();
  spare = undefined;
  return req;
}

function onComplete(this: WriteReq, status: number): void {
  const writer = this.writer;
  this.writer = undefined;
  this.buffer = null;
  writer?.completed(status);
}

function writeError(status: number): Error {
  const code = getSystemErrorName(status);
  return Object.assign(new Error(`write ${code}`), { code, errno: status, syscall: 'write' });
}

export class DirectWriter {
  /** Writes handed to libuv that have not completed yet. */
  private pending = 0;

  constructor(
    private readonly socket: Socket,
    /** Runs when the last asynchronous write completed (the stream's 'drain' for these writes). */
    private readonly onDrained: () => void,
  ) {}

  /** Whether writes to this socket bypass the stream now (for tests). */
  get direct(): boolean {
    return this.handle() !== undefined;
  }

  /** Writes buf; false when it could not all go out at once (wait for `onDrained` or 'drain'). */
  write(buf: Buffer): boolean {
    const handle = this.handle();
    if (handle === undefined) return this.socket.write(buf);
    const req = takeReq();
    const status = handle.writeBuffer(req, buf);
    if (status !== 0) {
      spare = req;
      this.socket.destroy(writeError(status));
      return false;
    }
    if (writeState![LAST_WRITE_WAS_ASYNC] === 0) {
      spare = req;
      return true;
    }
    req.handle = handle;
    req.buffer = buf; // libuv reads it until the write completes
    req.writer = this;
    req.oncomplete = onComplete;
    this.pending++;
    return false;
  }

  /** @internal called by the write request when libuv finished it. */
  completed(status: number): void {
    this.pending--;
    if (status < 0) {
      if (!this.socket.destroyed) this.socket.destroy(writeError(status));
      return;
    }
    if (this.pending === 0) this.onDrained();
  }

  /** The handle when a direct write keeps the stream's order: nothing queued, corked, connecting or ended. */
  private handle(): WritableHandle | undefined {
    if (binding === undefined) return undefined;
    const s = this.socket;
    const handle = (s as unknown as { _handle: Partial<WritableHandle> | null | undefined })._handle;
    if (handle == null || typeof handle.writeBuffer !== 'function') return undefined;
    if (s.writableLength !== 0 || s.writableCorked !== 0 || s.connecting || s.writableEnded) return undefined;
    return handle as WritableHandle;
  }
}
