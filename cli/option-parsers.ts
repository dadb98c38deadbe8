// Commander argument parsers shared by the tsmesh command and the benchmark CLIs: a bad value
// is refused with the option's name and what was expected (commander adds the name).
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../proxy/src/config/units.js';

/** A duration like 500ms, 5s or 1m, in ms; 0 allowed. */
export function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError(`must be a duration like 500ms, 5s or 1m (got "${value}")`);
  return ms;
}

/** A duration above 0, in ms. */
export function positiveDurationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError(`must be a duration like 500ms, 2s or 1m (got "${value}")`);
  return ms;
}
