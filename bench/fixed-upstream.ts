// A node:http server answering every request with the same small JSON body: the optional
// Node upstream of bench:overhead (`--upstream node`), for comparison with setups where the
// upstream is itself a Node service. Usage: node dist/bench/fixed-upstream.js PORT
import { createServer } from 'node:http';

const body = JSON.stringify({ status: 'ok', rows: [{ id: 1, title: 'test document', score: 0.75 }] });
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 75_000;
server.listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
