// The shared bearer token of the control plane: proxies send it in gRPC metadata, people
// and the CLI in the HTTP Authorization header. Compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class TokenCheck {
  private readonly expected: Buffer;

  constructor(token: string) {
    if (token === '') throw new Error('the control-plane token must not be empty');
    this.expected = digest(token);
  }

  /** True for "Bearer <token>" with the right token. */
  accepts(authorization: string | undefined): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), this.expected);
  }
}
