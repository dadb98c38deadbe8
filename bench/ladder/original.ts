// The original report's results (shared/original-report.md), row by row, to print beside
// ours. Their setup: 5 Go gateway instances behind nginx, PostgreSQL, Redis, k6 VUs.

export interface OriginalRow {
  readonly users: number;
  /** Success rate they reported, percent. */
  readonly successPct: number;
  /** Their words, translated. */
  readonly result: string;
}

export const ORIGINAL_ROWS: readonly OriginalRow[] = [
  { users: 10, successPct: 100, result: '100 % success' },
  { users: 50, successPct: 100, result: '100 % success, ~1000 RPS' },
  { users: 100, successPct: 95, result: '95 % success' },
  { users: 200, successPct: 0, result: '100 % errors: connection refused' },
  { users: 500, successPct: 0, result: '100 % errors: HTTP 499 (nginx time-outs)' },
  { users: 1000, successPct: 0, result: '100 % errors: overloaded' },
];

export const ORIGINAL_SETUP = '5 Go gateway instances behind nginx, PostgreSQL, Redis; k6';

export function originalAt(users: number): string {
  return ORIGINAL_ROWS.find((r) => r.users === users)?.result ?? (users > 1000 ? 'not tested (failed from 200)' : 'not tested');
}
