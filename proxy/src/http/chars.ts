// Byte classes of RFC 9110/9112 as lookup tables, and the few byte helpers the codec needs.
// The parsers run one table lookup per byte; no regular expressions on the request path.

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** tchar (RFC 9110 5.6.2): the characters of a token such as a method or a field name. */
export const TCHAR = table((c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/** What may appear inside a field value: field-vchar (VCHAR / obs-text), SP and HTAB. Never CR, LF, NUL or other CTLs. */
export const FIELD_VALUE = table((c) => (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c === 0x20 || c === 0x09);

/** Request-target bytes: visible ASCII only (no spaces, controls or raw non-ASCII; those must be percent-encoded). */
export const TARGET = table((c) => c >= 0x21 && c <= 0x7e);

/** Host header bytes: reg-name / IP-literal / port (unreserved, sub-delims, pct-encoded, ":", "[", "]"). */
export const HOST = table((c) => isAlpha(c) || isDigit(c) || "-._~!$&'()*+,;=:[]%".includes(String.fromCharCode(c)));

/** Hex digit value + 1 (0 = not a hex digit). */
export const HEX = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    if (isDigit(c)) t[c] = c - 0x30 + 1;
    else if (c >= 0x41 && c <= 0x46) t[c] = c - 0x41 + 11;
    else if (c >= 0x61 && c <= 0x66) t[c] = c - 0x61 + 11;
  }
  return t;
})();

/**
 * The bytes the parsers compare with, as a const enum: tsc writes each use as a literal. An
 * imported `const` is read through its module cell at every use, which in the parsers' per-byte
 * loops made them up to 1.8x slower (one script timing both ways on Node 20).
 */
export const enum Byte {
  HTAB = 0x09,
  LF = 0x0a,
  CR = 0x0d,
  SP = 0x20,
  COLON = 0x3a,
}

interface Latin1Buffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  latin1Write(text: string, offset: number, length?: number): number;
}

/** A latin1 string of buf[start, end): one byte per char, no UTF-8 decoding (header bytes are opaque octets). */
export function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as Latin1Buffer).latin1Slice(start, end);
}

/**
 * Writes text (one byte per char) into buf at offset; returns the offset after it. Short
 * strings (most header lines) are written by a JS loop: cheaper than a call into C++.
 */
export function writeLatin1(buf: Buffer, text: string, offset: number): number {
  const n = text.length;
  if (n <= 64) {
    for (let i = 0; i < n; i++) buf[offset + i] = text.charCodeAt(i);
    return offset + n;
  }
  return offset + (buf as Latin1Buffer).latin1Write(text, offset, n);
}

/** Node's byte copy between buffers: (source, target, targetStart, sourceStart, sourceEnd) → bytes copied. */
type NodeCopy = (source: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;

/**
 * Node's own copy (the C++ function behind Buffer#copy), when this Node has it with the argument
 * order checked here. Not public API (process.binding), so it is feature-checked, as the
 * socket writer's handle writes are; without it copies go through a Uint8Array view.
 */
function loadNodeCopy(): NodeCopy | undefined {
  try {
    const copy = (process as unknown as { binding(name: string): { copy?: unknown } }).binding('buffer').copy;
    if (typeof copy !== 'function') return undefined;
    const src = Buffer.from('abcdef', 'latin1');
    const dst = Buffer.alloc(5);
    if ((copy as NodeCopy)(src, dst, 1, 2, 5) !== 3 || dst.toString('latin1') !== '\0cde\0') return undefined;
    return copy as NodeCopy;
  } catch {
    return undefined;
  }
}

export const nodeCopy: NodeCopy | undefined = loadNodeCopy();

/**
 * Copies src[start, end) into dst at offset; returns the offset after it. Short ranges by a JS
 * loop (about 1.5 ns a byte); longer ones by Node's own copy, which costs what a Uint8Array view
 * and `set` cost (~120 ns with the Buffer the copy goes to) but leaves no view behind: in the
 * real proxy a request's cost follows the bytes it allocates (0.4-0.8 µs per KB, measured by
 * adding garbage to each request), and a view is ~100 bytes. Without that function, a view.
 */
export function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, offset: number): number {
  const n = end - start;
  if (n <= 32) {
    for (let i = 0; i < n; i++) dst[offset + i] = src[start + i]!;
    return offset + n;
  }
  if (nodeCopy !== undefined) nodeCopy(src, dst, offset, start, end);
  else dst.set(new Uint8Array(src.buffer, src.byteOffset + start, n), offset);
  return offset + n;
}

/**
 * Case-insensitive comparison of buf[start, start + lower.length) with a lower-case ASCII name.
 * Only valid on bytes already checked to be tchar: OR-ing 0x20 folds A-Z onto a-z and leaves
 * every other tchar unchanged.
 */
export function equalsLowerToken(buf: Buffer, start: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[start + i]! | 0x20) !== lower[i]) return false;
  return true;
}

/** Case-insensitive comparison of field-value bytes with a lower-case ASCII word. */
export function equalsLowerValue(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = buf[start + i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}
