import { describe, expect, it } from 'vitest';
import { EventBus } from '../../infra/events/index.ts';
import { DeviceKeyCache } from './credential-cache.ts';

const entry = (keyId: number) => ({
  keyId,
  device: { id: keyId, uuid: `uuid-${keyId}`, org_id: 1, fleet_id: 1 },
  lastUsedAt: null,
});

const bus = () =>
  new EventBus((err) => {
    throw err;
  });
const committed = { action: 'device.update', resourceType: 'device', orgId: 1 };

describe('DeviceKeyCache', () => {
  it('answers a verified key until it expires', () => {
    const cache = new DeviceKeyCache(bus(), 1_000);
    cache.put('a', entry(1), cache.snapshot(), 0);
    expect(cache.get('a', 999)?.keyId).toBe(1);
    expect(cache.get('a', 1_000)).toBeUndefined();
  });

  it("forgets everything after any write committed in its app, and nothing for another app's writes", () => {
    const events = bus();
    const other = bus();
    const cache = new DeviceKeyCache(events);
    cache.put('a', entry(1), cache.snapshot(), 0);
    other.emit('write.committed', committed);
    expect(cache.get('a', 1)?.keyId).toBe(1);
    events.emit('write.committed', committed);
    expect(cache.get('a', 1)).toBeUndefined();
  });

  it('refuses a lookup that read the database before an invalidation', () => {
    const events = bus();
    const cache = new DeviceKeyCache(events);
    const before = cache.snapshot();
    // Meanwhile an admin revokes the key: the row read above may predate the commit.
    events.emit('write.committed', committed);
    cache.put('a', entry(1), before, 0);
    expect(cache.get('a', 1)).toBeUndefined();
    cache.put('a', entry(1), cache.snapshot(), 0);
    expect(cache.get('a', 1)?.keyId).toBe(1);
  });

  it('keeps at most its bound, dropping the oldest first', () => {
    const cache = new DeviceKeyCache(bus(), 60_000, 2);
    for (const [i, key] of ['a', 'b', 'c'].entries()) cache.put(key, entry(i), cache.snapshot(), i);
    expect(cache.size).toBe(2);
    expect(cache.get('a', 3)).toBeUndefined();
    expect(cache.get('c', 3)?.keyId).toBe(2);
  });
});
