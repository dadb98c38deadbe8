#!/usr/bin/env node
// The demo's embedded PostgreSQL as a process of its own: the control plane and every
// gateway instance share it (one data directory serves one server), and it is stopped last,
// after everything that uses it. Run as `node embedded-postgres-process.js DATA_DIR`; prints
// one JSON line {"msg":"listening","url":...} when it accepts connections; SIGTERM or SIGINT
// (or SIGHUP) stops the server and exits 0, also when it arrives while the server starts.
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../control-plane/src/store/embedded-postgres.js';

const dataDir = process.argv[2];
if (!dataDir) {
  console.error('usage: embedded-postgres-process DATA_DIR');
  process.exit(2);
}

// The handlers go in before the start: a SIGTERM or Ctrl-C during initdb must not kill this
// wrapper and leave initdb or the server it starts running with nobody to stop them (the
// package's own exit hooks are removed, see loadEmbeddedPostgres). A stop asked for while
// starting is carried out as soon as the start is done.
let db: EmbeddedDatabase | undefined;
let stopAsked = false;
let stopping = false;
const stop = () => {
  stopAsked = true;
  if (!db || stopping) return;
  stopping = true;
  db.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`stopping PostgreSQL failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
};
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, stop);

try {
  db = await startEmbeddedPostgres(dataDir, {
    log: (line) => {
      if (/ERROR|FATAL|PANIC/.test(line)) process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
    },
  });
} catch (err) {
  console.error(`starting PostgreSQL failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
if (stopAsked) stop();
else console.log(JSON.stringify({ msg: 'listening', url: db.url, dataDir }));
