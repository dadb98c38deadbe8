// The metric names a PromQL expression reads, found without a full PromQL parser: strings,
// label matchers, ranges and grouping clauses are cut out, then every identifier that is not a
// function call, keyword or number is a metric name. Good for checking that dashboards and
// rules use only catalogued metrics; syntax itself is checked by promtool.

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

export function metricNames(expr: string): Set<string> {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/#[^\n]*/g, ' ');
  const names = new Set<string>();
  const ident = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;
  let m: RegExpExecArray | null;
  while ((m = ident.exec(s))) {
    const word = m[0];
    const before = s[m.index - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // the tail of a number such as 1e3
    const after = s.slice(m.index + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return names;
}
