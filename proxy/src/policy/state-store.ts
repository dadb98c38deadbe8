// State a policy keeps for one route (or any named owner) across config snapshots, such as
// a rate limiter's buckets. Created on first use, found again by the next snapshot.
//
// Some state holds what must be given back when its owner leaves the config (a limiter's
// Redis connection or timers, scrape hooks): such state has a dispose() method, which the
// store calls when the state is dropped, and StateRegistry.retain / ClusterState.release call
// for owners that are gone.

/** Policy state holding something outside itself, given back by dispose() when its owner is removed. */
export interface DisposableState {
  dispose(): void;
}

/** Calls dispose() on a policy state that has one. */
export function disposeState(state: unknown): void {
  if (typeof state === 'object' && state !== null && typeof (state as Partial<DisposableState>).dispose === 'function') {
    (state as DisposableState).dispose();
  }
}

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

  /** Drops a policy's state (e.g. when the policy was removed from the config), disposing it. */
  drop(policy: string): void {
    const s = this.states.get(policy);
    this.states.delete(policy);
    disposeState(s);
  }

  /** Drops every state, disposing each: the owner left the config. */
  release(): void {
    const all = [...this.states.values()];
    this.states.clear();
    for (const s of all) disposeState(s);
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

  /**
   * Keeps the stores of these owners and releases the rest (closing, for example, the rate
   * limiter of a route that is gone). The runtime calls it on every applied config with the
   * route names it has, before building the new snapshot's policies.
   */
  retain(owners: Iterable<string>): void {
    const keep = new Set(owners);
    for (const [name, store] of [...this.owners]) {
      if (keep.has(name)) continue;
      this.owners.delete(name);
      store.release();
    }
  }
}
