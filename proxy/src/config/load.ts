// Reads a config file (YAML, JSON being a subset) and validates it. Syntax errors are
// reported with their line and column, like schema errors, all at once.
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import type { ProxyConfig } from './schema.js';
import { proxyConfig } from './schema.js';
import { validateWith, type ValidationResult } from './validate.js';

/** Parses YAML text into a plain value, or lists its syntax errors. Exactly one document is allowed. */
export function parseYaml(text: string, source = 'config'): ValidationResult<unknown> {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) return { ok: true, value: {} };
  const errors: string[] = [];
  for (const doc of docs) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      errors.push(`${source}${pos ? `:${pos.line}:${pos.col}` : ''}: ${e.message.split('\n')[0]}`);
    }
  }
  if (docs.length > 1) errors.push(`${source}: holds ${docs.length} YAML documents; one is expected`);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: docs[0]?.toJS({ maxAliasCount: 100 }) ?? {} };
}

/** Loads and validates a config text against the proxy schema, or a schema extending it. */
export function parseConfigText<S extends z.ZodType = typeof proxyConfig>(text: string, source = 'config', schema?: S): ValidationResult<z.output<S>> {
  const parsed = parseYaml(text, source);
  if (!parsed.ok) return parsed;
  return validateWith((schema ?? proxyConfig) as S, parsed.value);
}

export async function loadConfigFile(path: string): Promise<ValidationResult<ProxyConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: ${(err as Error).message}`] };
  }
  return parseConfigText(text, path);
}
