// Which document serves which proxy. A document names its proxies with a glob on node names
// (`gateway-*`, `orders-?`, or an exact name); the set of documents sharing a selector is a
// *service*, and its latest revision is what those proxies run.
//
// When several selectors match one node, the most specific wins: an exact name beats every
// glob, and among globs the one with more literal characters wins (`gateway-eu-*` beats
// `gateway-*`, which beats `*`). On a tie the older service (the selector first applied
// earlier) keeps the node, so a new apply never silently takes nodes from another service;
// the apply answer lists such nodes as warnings.

/** Letters, digits, "_", ".", "-", and the wildcards "*" (any run) and "?" (one character). */
export const SELECTOR_PATTERN = /^[A-Za-z0-9_.*?-]{1,63}$/;

export interface CompiledSelector {
  readonly selector: string;
  readonly regex: RegExp;
  /** Exact names: Infinity; globs: the number of literal characters. */
  readonly specificity: number;
}

export function compileSelector(selector: string): CompiledSelector {
  let source = '';
  let literals = 0;
  for (const ch of selector) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else {
      source += ch.replace(/[.\\^$+(){}[\]|-]/g, '\\$&');
      literals++;
    }
  }
  const glob = /[*?]/.test(selector);
  return { selector, regex: new RegExp(`^${source}$`), specificity: glob ? literals : Number.POSITIVE_INFINITY };
}

export interface Candidate {
  readonly compiled: CompiledSelector;
  /** The first revision ever applied with this selector: the tie-breaker (older wins). */
  readonly firstRevision: number;
}

/** The candidate that serves a node, or undefined when none matches. */
export function resolveNode<C extends Candidate>(node: string, candidates: Iterable<C>): C | undefined {
  let best: C | undefined;
  for (const c of candidates) {
    if (!c.compiled.regex.test(node)) continue;
    if (
      !best ||
      c.compiled.specificity > best.compiled.specificity ||
      (c.compiled.specificity === best.compiled.specificity && c.firstRevision < best.firstRevision)
    ) {
      best = c;
    }
  }
  return best;
}
