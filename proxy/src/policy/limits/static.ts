// A fixed concurrency limit (`concurrency.limit`): a bulkhead, like cockatiel's
// BulkheadPolicy, with the queue kept by the concurrency policy.
import type { LimitAlgorithm } from './limit.js';

export class StaticLimit implements LimitAlgorithm {
  constructor(readonly limit: number) {}

  onSample(): void {
    // A static limit learns nothing.
  }
}
