// Control-plane documents for tests: one listener, one route, one cluster, with knobs.

export function gatewayDoc(opts: { selector?: string; timeout?: string; address?: string; endpoints?: string[] } = {}): string {
  return `
selector: ${opts.selector ?? 'gateway-*'}
listeners:
  - name: edge
    address: ${opts.address ?? '127.0.0.1:0'}
    routes:
      - name: query
        match: { path: { prefix: / } }
        cluster: gateway
        timeout: ${opts.timeout ?? '2s'}
clusters:
  - name: gateway
    endpoints: [${(opts.endpoints ?? ['127.0.0.1:9001']).join(', ')}]
`;
}
