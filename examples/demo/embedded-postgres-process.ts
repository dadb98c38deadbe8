#!/usr/bin/env node
// The demo's embedded PostgreSQL as a process of its own: the control plane and every
// gateway instance share it (one data directory serves one server), and it is stopped last,
// after everything that uses it. Run as `node embedded-postgres-process.js DATA_DIR`; prints
// one JSON line {"msg":"listening","url":...} when it accepts connections; SIGTERM or SIGINT
// stops the server and exits 0.
import { startEmbeddedPostgres } from '../../control-plane/src/store/embedded-postgres.js';

const dataDir = process.argv[2];
if (!dataDir) {
  console.error('usage: embedded-postgres-process DATA_DIR');
  process.exit(2);
}

const db = await startEmbeddedPostgres(dataDir, {
  log: (line) => {
    if (/ERROR|FATAL|PANIC/.test(line)) process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
  },
});
console.log(JSON.stringify({ msg: 'listening', url: db.url, dataDir }));

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  db.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`stopping PostgreSQL failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
