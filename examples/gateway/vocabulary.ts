// The words the generated documents are made of, and that the load generator builds its
// varying queries from. Common words such as "test" are frequent on purpose: the original
// report's `{"query":"test"}` must find rows.

export const WORDS: readonly string[] = [
  'test', 'service', 'gateway', 'query', 'cache', 'database', 'request', 'response', 'latency', 'user',
  'mesh', 'proxy', 'network', 'server', 'client', 'error', 'timeout', 'retry', 'circuit', 'breaker',
  'load', 'balance', 'traffic', 'route', 'config', 'metric', 'trace', 'log', 'deploy', 'release',
  'cluster', 'node', 'pod', 'container', 'image', 'build', 'pipeline', 'queue', 'stream', 'event',
  'message', 'topic', 'index', 'search', 'document', 'record', 'table', 'schema', 'migration', 'backup',
  'replica', 'shard', 'partition', 'lock', 'transaction', 'commit', 'rollback', 'session', 'token', 'auth',
  'password', 'account', 'payment', 'order', 'invoice', 'product', 'catalog', 'price', 'cart', 'checkout',
  'shipping', 'customer', 'report', 'dashboard', 'alert', 'incident', 'monitor', 'health', 'status', 'version',
  'feature', 'flag', 'experiment', 'analytics', 'storage', 'bucket', 'object', 'file', 'upload', 'download',
  'memory', 'cpu', 'disk', 'thread', 'process', 'worker', 'job', 'schedule', 'cron', 'batch',
  'limit', 'quota', 'rate', 'burst', 'window', 'budget', 'capacity', 'scale', 'autoscale', 'instance',
  'region', 'zone', 'edge', 'origin', 'endpoint', 'socket', 'connection', 'pool', 'handshake', 'certificate',
  'secret', 'key', 'policy', 'rule', 'permission', 'role', 'group', 'team', 'project', 'workspace',
  'api', 'rest', 'grpc', 'json', 'protocol', 'header', 'payload', 'body', 'field', 'value',
  'profile', 'setting', 'preference', 'notification', 'email', 'webhook', 'callback', 'integration', 'plugin', 'module',
  'package', 'library', 'framework', 'runtime', 'compiler', 'benchmark', 'performance', 'throughput', 'overload', 'failure',
  'recovery', 'fallback', 'degraded', 'outage', 'maintenance', 'upgrade', 'patch', 'bug', 'fix', 'review',
  'merge', 'branch', 'tag', 'artifact', 'registry', 'mirror', 'snapshot', 'restore', 'archive', 'audit',
];
