// A strict parser of the Prometheus text exposition format (version 0.0.4, what prom-client
// and every Prometheus client serve on /metrics). Used by `tsmesh stat` and by tests that read
// exact figures from a proxy's /metrics. Strict: anything outside the format is an error naming
// the line, so that a broken exposition is noticed rather than half read.
//
//   # HELP name text            (text escapes: \\ and \n)
//   # TYPE name counter|gauge|histogram|summary|untyped
//   name{label="value",...} value [timestamp_ms]     (value escapes: \\ \" \n)

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Milliseconds since the epoch, when the exposition gives one. */
  readonly timestamp?: number;
}

export interface MetricFamily {
  readonly name: string;
  type: MetricType;
  help: string;
  readonly samples: Sample[];
}

export interface Exposition {
  /** Families by name, in order of appearance. */
  readonly families: Map<string, MetricFamily>;
  /** Every sample, in order. */
  readonly samples: Sample[];
}

export class PromTextError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'PromTextError';
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

export function parsePromText(text: string): Exposition {
  const families = new Map<string, MetricFamily>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  // Families whose samples have been seen: a TYPE or HELP after them is an error.
  const sampled = new Set<string>();
  const typed = new Set<string>();
  const helped = new Set<string>();

  const familyOf = (name: string): MetricFamily | undefined => {
    const exact = families.get(name);
    if (exact) return exact;
    for (const [type, suffixes] of Object.entries(SUFFIXES)) {
      for (const s of suffixes) {
        if (!name.endsWith(s)) continue;
        const f = families.get(name.slice(0, -s.length));
        if (f && f.type === type) return f;
      }
    }
    return undefined;
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name!)) throw new PromTextError(lineNo, `invalid metric name "${name}"`);
      if (sampled.has(name!)) throw new PromTextError(lineNo, `# ${kind} for ${name} after its samples`);
      let family = families.get(name!);
      if (!family) {
        family = { name: name!, type: 'untyped', help: '', samples: [] };
        families.set(name!, family);
      }
      if (kind === 'TYPE') {
        const type = rest.trim() as MetricType;
        if (!TYPES.has(type)) throw new PromTextError(lineNo, `unknown type "${rest.trim()}" for ${name}`);
        if (typed.has(name!)) throw new PromTextError(lineNo, `second # TYPE for ${name}`);
        family.type = type;
        typed.add(name!);
      } else {
        if (helped.has(name!)) throw new PromTextError(lineNo, `second # HELP for ${name}`);
        family.help = unescapeHelp(rest, lineNo);
        helped.add(name!);
      }
      continue;
    }
    const sample = parseSample(line, lineNo);
    let family = familyOf(sample.name);
    if (!family) {
      family = { name: sample.name, type: 'untyped', help: '', samples: [] };
      families.set(sample.name, family);
    }
    sampled.add(family.name);
    family.samples.push(sample);
    samples.push(sample);
  }
  return { families, samples };
}

function unescapeHelp(s: string, lineNo: number): string {
  return s.replace(/\\(.)?/g, (_, c: string | undefined) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new PromTextError(lineNo, `invalid escape "\\${c ?? ''}" in HELP text`);
  });
}

function parseSample(line: string, lineNo: number): Sample {
  let pos = 0;
  const n = line.length;
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new PromTextError(lineNo, `expected a metric name, got "${line.slice(0, 40)}"`);
  const name = nameMatch[0];
  pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      while (line[pos] === ' ' || line[pos] === '\t') pos++;
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
      if (!lm) throw new PromTextError(lineNo, `expected a label name at column ${pos + 1}`);
      const label = lm[0];
      if (!LABEL_NAME.test(label)) throw new PromTextError(lineNo, `invalid label name "${label}"`);
      if (label in labels) throw new PromTextError(lineNo, `label "${label}" repeated`);
      pos += label.length;
      while (line[pos] === ' ' || line[pos] === '\t') pos++;
      if (line[pos] !== '=') throw new PromTextError(lineNo, `expected "=" after label ${label}`);
      pos++;
      while (line[pos] === ' ' || line[pos] === '\t') pos++;
      if (line[pos] !== '"') throw new PromTextError(lineNo, `expected a quoted value for label ${label}`);
      pos++;
      let value = '';
      for (;;) {
        if (pos >= n) throw new PromTextError(lineNo, `unterminated value of label ${label}`);
        const c = line[pos]!;
        if (c === '"') {
          pos++;
          break;
        }
        if (c === '\\') {
          const e = line[pos + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new PromTextError(lineNo, `invalid escape "\\${e ?? ''}" in label ${label}`);
          pos += 2;
          continue;
        }
        value += c;
        pos++;
      }
      labels[label] = value;
      while (line[pos] === ' ' || line[pos] === '\t') pos++;
      if (line[pos] === ',') {
        pos++;
        continue;
      }
      if (line[pos] === '}') {
        pos++;
        break;
      }
      throw new PromTextError(lineNo, `expected "," or "}" after label ${label}`);
    }
  }
  const rest = line.slice(pos);
  if (rest !== '' && rest[0] !== ' ' && rest[0] !== '\t') throw new PromTextError(lineNo, `unexpected "${rest[0]}" after ${name}`);
  const fields = rest.trim().split(/[ \t]+/);
  if (fields.length === 0 || fields[0] === '') throw new PromTextError(lineNo, `no value for ${name}`);
  if (fields.length > 2) throw new PromTextError(lineNo, `unexpected "${fields[2]}" after the value of ${name}`);
  const value = parseValue(fields[0]!);
  if (value === undefined) throw new PromTextError(lineNo, `invalid value "${fields[0]}" for ${name}`);
  if (fields.length === 2) {
    if (!/^-?\d+$/.test(fields[1]!)) throw new PromTextError(lineNo, `invalid timestamp "${fields[1]}" for ${name}`);
    return { name, labels, value, timestamp: Number(fields[1]) };
  }
  return { name, labels, value };
}

/** A Go ParseFloat-style number, including NaN, +Inf, -Inf (any case). */
function parseValue(s: string): number | undefined {
  const lower = s.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** The samples named `name` whose labels include every pair of `match`. */
export function select(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): Sample[] {
  const keys = Object.keys(match);
  return samples.filter((s) => s.name === name && keys.every((k) => s.labels[k] === match[k]));
}

/** Sum of `select(...)`; 0 when nothing matches. */
export function sumOf(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const s of select(samples, name, match)) total += s.value;
  return total;
}
