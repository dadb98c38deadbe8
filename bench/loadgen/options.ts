// Load options as plain data (for a child process or a JSON file), and back to runnable
// options: a request body function cannot cross a process boundary, so bodies are named.
import { queryBodies } from './bodies.js';
import type { LoadOptions, RequestSpec } from './run.js';

export type BodySpec = { readonly kind: 'none' } | { readonly kind: 'fixed'; readonly body: string } | { readonly kind: 'queries'; readonly distinct?: number; readonly seed?: number };

export type PlainRequestSpec = Omit<RequestSpec, 'body'> & { readonly body?: BodySpec };

export type PlainLoadOptions = (Omit<Extract<LoadOptions, { model: 'closed' }>, 'request'> | Omit<Extract<LoadOptions, { model: 'open' }>, 'request'>) & {
  readonly request?: PlainRequestSpec;
};

export function toLoadOptions(p: PlainLoadOptions): LoadOptions {
  const r = p.request;
  if (!r) return p as LoadOptions;
  const b = r.body ?? { kind: 'none' };
  let body: RequestSpec['body'];
  if (b.kind === 'fixed') {
    const text = b.body;
    body = () => text;
  } else if (b.kind === 'queries') body = queryBodies({ distinct: b.distinct, seed: b.seed });
  return { ...p, request: { ...r, body } } as LoadOptions;
}
