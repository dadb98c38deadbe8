// A helper process for listen-descriptors.ts: it sends every handle it receives straight back
// to its parent, which gets it as a new file descriptor for the same socket, then closes its
// own copy. It never listens on or reads from what it receives.
process.on('message', (message: unknown, handle: unknown) => {
  if (message !== 'dup' || handle === undefined) return;
  process.send!('dup', handle as never, {}, () => (handle as { close?: () => void }).close?.());
});
process.on('disconnect', () => process.exit(0));
