import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../clock.js';
import { ControlPlaneClient, withBootstrap } from './control-plane-client.js';
import { waitFor } from '../../../test/support/servers.js';
import type { ConfigTarget } from './target.js';

const noTarget: ConfigTarget = { current: undefined, apply: async () => ({ ok: false, errors: ['unused'] }) };

async function retryDelays(random: () => number, count: number): Promise<number[]> {
  const clock = new FakeClock();
  const port = 1; // below the ephemeral range: nothing listens there, every attempt fails at once
  const delays: number[] = [];
  const client = new ControlPlaneClient({
    target: noTarget,
    bootstrap: { controlPlane: { address: `127.0.0.1:${port}`, node: 'n1', token: 't' } },
    clock,
    random,
    backoff: { baseMs: 100, maxMs: 400 },
    log: (_level, msg, fields) => {
      if (msg.startsWith('control-plane stream lost')) delays.push(fields!.retryInMs as number);
    },
  });
  client.start();
  try {
    for (let i = 1; i <= count; i++) {
      await waitFor(`attempt ${i} failed`, async () => delays.length === i, 5000);
      assert.equal(client.status.state, 'disconnected');
      assert.equal(client.status.failedAttempts, i);
      assert.match(client.status.lastError!, /^UNAVAILABLE/);
      // Nothing happens before the delay is over; the next attempt starts when it is.
      if (delays[i - 1]! > 0) {
        clock.advance(delays[i - 1]! - 1);
        assert.equal(client.status.state, 'disconnected');
      }
      clock.advance(1);
      if (i < count) assert.equal(client.status.state, 'connecting');
    }
  } finally {
    await client.stop();
  }
  return delays;
}

test('reconnects with exponential backoff, capped, with full jitter', async () => {
  assert.deepEqual(await retryDelays(() => 1, 5), [100, 200, 400, 400, 400]);
  assert.deepEqual(await retryDelays(() => 0.5, 4), [50, 100, 200, 200]);
});

test('the bootstrap admin and controlPlane replace those of a streamed document', () => {
  const doc = withBootstrap(
    { admin: { address: '0.0.0.0:1' }, controlPlane: { address: 'x:1', node: 'other' }, listeners: [] },
    { admin: { address: '127.0.0.1:15000' }, controlPlane: { address: '127.0.0.1:15010', node: 'gateway-1' } },
  );
  assert.deepEqual(doc, { listeners: [], admin: { address: '127.0.0.1:15000' }, controlPlane: { address: '127.0.0.1:15010', node: 'gateway-1' } });
});
