// Waiting inside a policy (a backoff sleep, a Retry-After pause) the way every wait on the
// request path must: on the request's clock, stoppable through `ctx.cancel` when the client
// goes away, and never past the request's deadline.
import type { RequestContext } from './types.js';
import { localResponse, type LocalResponse } from './types.js';

/** What a policy answers when the client went away while it waited (499, logged, never sent). */
export const CLIENT_CLOSED: LocalResponse = Object.freeze(localResponse('client_closed', 499, { detail: 'client closed the request' }));

/**
 * Sleeps ms on ctx.clock. Resolves true when the time passed, false when the client went away
 * (or had already). Callers check the deadline before sleeping; this clamps to it regardless.
 */
export function sleep(ctx: RequestContext, ms: number): Promise<boolean> {
  if (ctx.aborted) return Promise.resolve(false);
  const wait = Math.min(ms, ctx.deadline - ctx.clock.now());
  if (wait <= 0) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const timer = ctx.clock.setTimer(() => {
      if (ctx.cancel === cancel) ctx.cancel = undefined;
      resolve(true);
    }, wait);
    const cancel = (): void => {
      timer.cancel();
      if (ctx.cancel === cancel) ctx.cancel = undefined;
      resolve(false);
    };
    ctx.cancel = cancel;
  });
}
