// State a policy keeps for one route (or any named owner) across config snapshots, such as
// a rate limiter's buckets. Created on first use, found again by the next snapshot.
export class StateStore {
  private readonly states = new Map<string, unknown>();

  stateOf<T>(policy: string, create: () => T): T {
    let s = this.states.get(policy) as T | undefined;
    if (s === undefined) {
      s = create();
      this.states.set(policy, s);
    }
    return s;
  }

  /** Drops a policy's state (e.g. when the policy was removed from the config). */
  drop(policy: string): void {
    this.states.delete(policy);
  }
}

/** StateStores by owner name (route names), dropping owners that are no longer configured. */
export class StateRegistry {
  private readonly owners = new Map<string, StateStore>();

  of(owner: string): StateStore {
    let s = this.owners.get(owner);
    if (!s) {
      s = new StateStore();
      this.owners.set(owner, s);
    }
    return s;
  }

  retain(owners: Iterable<string>): void {
    const keep = new Set(owners);
    for (const name of [...this.owners.keys()]) if (!keep.has(name)) this.owners.delete(name);
  }
}
