// The load generator: closed and open models on raw keep-alive sockets, in-process or as a
// child process.
export { runLoad, type LoadOptions, type ClosedOptions, type OpenOptions, type LoadResult, type RequestSpec } from './run.js';
export { runLoadInChild } from './child.js';
export { toLoadOptions, type PlainLoadOptions, type BodySpec } from './options.js';
export { queryBodies, queryRequest, queryTexts } from './bodies.js';
export { ERROR_CLASSES, type ErrorClass, type StatsSummary, type LatencySummary } from './stats.js';
