// The in-process cache and the stored entry format, on fake time: when an entry comes due for a
// refresh, when it expires, and entries written before refresh times existed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryCache, REFRESH_FROM, REFRESH_TO, decodeEntry, encodeEntry, refreshAt, refreshClaimMs } from './cache.js';

describe('query cache refresh ahead', () => {
  it('spreads refresh times over 60-80 % of the TTL', () => {
    assert.equal(refreshAt(1000, 30_000, () => 0), 1000 + 30_000 * REFRESH_FROM);
    assert.equal(refreshAt(1000, 30_000, () => 0.5), 1000 + 30_000 * ((REFRESH_FROM + REFRESH_TO) / 2));
    const latest = refreshAt(1000, 30_000, () => 0.999_999);
    assert.ok(latest > 1000 + 30_000 * REFRESH_FROM && latest <= 1000 + 30_000 * REFRESH_TO, `${latest}`);
  });

  it('round-trips an entry and reports it due from its refresh time on', () => {
    const raw = encodeEntry(5000, '"count":1,"results":[{"t":"a|b"}]');
    assert.deepEqual(decodeEntry(raw, 4999), { status: 'hit', value: '"count":1,"results":[{"t":"a|b"}]', refreshDue: false });
    assert.deepEqual(decodeEntry(raw, 5000), { status: 'hit', value: '"count":1,"results":[{"t":"a|b"}]', refreshDue: true });
  });

  it('takes a stored value without a refresh time for a miss, not for an answer', () => {
    assert.deepEqual(decodeEntry('"count":0,"results":[]', 0), { status: 'miss' });
  });

  it('holds a refresh claim for a tenth of the TTL, at most 5 s', () => {
    assert.equal(refreshClaimMs(2000), 200);
    assert.equal(refreshClaimMs(30_000), 3000);
    assert.equal(refreshClaimMs(300_000), 5000);
    assert.equal(refreshClaimMs(1), 1);
  });

  it('memory cache: fresh, then due for a refresh, then expired; a new write starts over', async () => {
    let now = 0;
    const cache = new MemoryCache(10_000, 100, () => now, () => 0.5);
    cache.set('q', 'v1');
    assert.deepEqual(await cache.get('q'), { status: 'hit', value: 'v1', refreshDue: false });
    now = 6999;
    assert.equal(((await cache.get('q')) as { refreshDue: boolean }).refreshDue, false);
    now = 7000;
    assert.deepEqual(await cache.get('q'), { status: 'hit', value: 'v1', refreshDue: true });
    // One refresh per claim period (a tenth of the TTL), so a failing database is not asked on every hit.
    assert.equal(await cache.claimRefresh('q'), true);
    assert.equal(await cache.claimRefresh('q'), false);
    now = 7999;
    assert.equal(await cache.claimRefresh('q'), false);
    now = 8000;
    assert.equal(await cache.claimRefresh('q'), true);
    cache.set('q', 'v2'); // what the refresh writes
    assert.deepEqual(await cache.get('q'), { status: 'hit', value: 'v2', refreshDue: false });
    assert.equal(await cache.claimRefresh('q'), true, 'a new entry is not claimed');
    now = 8000 + 10_000;
    assert.deepEqual(await cache.get('q'), { status: 'miss' });
  });
});
