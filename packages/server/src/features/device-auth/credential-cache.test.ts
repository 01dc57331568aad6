import { describe, expect, it } from 'vitest';
import { writeCommitted } from '../../infra/service/index.ts';
import { DeviceKeyCache, forgetDeviceCredentials } from './credential-cache.ts';

const entry = (keyId: number) => ({
  keyId,
  device: { id: keyId, uuid: `uuid-${keyId}`, org_id: 1, fleet_id: 1 },
  lastUsedAt: null,
});

describe('DeviceKeyCache', () => {
  it('answers a verified key until it expires', () => {
    const cache = new DeviceKeyCache(1_000);
    cache.put('a', entry(1), cache.snapshot(), 0);
    expect(cache.get('a', 999)?.keyId).toBe(1);
    expect(cache.get('a', 1_000)).toBeUndefined();
  });

  it('forgets everything when credentials are forgotten, in every cache', () => {
    const one = new DeviceKeyCache();
    const two = new DeviceKeyCache();
    one.put('a', entry(1), one.snapshot(), 0);
    two.put('b', entry(2), two.snapshot(), 0);
    forgetDeviceCredentials();
    expect(one.get('a', 1)).toBeUndefined();
    expect(two.get('b', 1)).toBeUndefined();
  });

  it('forgets everything after any committed write', () => {
    const cache = new DeviceKeyCache();
    cache.put('a', entry(1), cache.snapshot(), 0);
    writeCommitted({ action: 'device.update', resourceType: 'device' });
    expect(cache.get('a', 1)).toBeUndefined();
  });

  it('refuses a lookup that read the database before an invalidation', () => {
    const cache = new DeviceKeyCache();
    const before = cache.snapshot();
    // Meanwhile an admin revokes the key: the row read above may predate the commit.
    forgetDeviceCredentials();
    cache.put('a', entry(1), before, 0);
    expect(cache.get('a', 1)).toBeUndefined();
    cache.put('a', entry(1), cache.snapshot(), 0);
    expect(cache.get('a', 1)?.keyId).toBe(1);
  });

  it('keeps at most its bound, dropping the oldest first', () => {
    const cache = new DeviceKeyCache(60_000, 2);
    for (const [i, key] of ['a', 'b', 'c'].entries()) cache.put(key, entry(i), cache.snapshot(), i);
    expect(cache.size).toBe(2);
    expect(cache.get('a', 3)).toBeUndefined();
    expect(cache.get('c', 3)?.keyId).toBe(2);
  });
});
