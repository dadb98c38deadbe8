// The example gateway API service (GET /health, POST /query) that the mesh fronts.
export { startGateway, parseQueryBody, MAX_QUERY_CHARS, type Gateway, type GatewayOptions, type GatewayLog } from './server.js';
export { MAX_BODY_BYTES } from './http.js';
export { WORDS } from './vocabulary.js';
