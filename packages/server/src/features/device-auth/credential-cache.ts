import type { EventBus } from '../../infra/events/index.ts';

/**
 * Device keys verified against the database a moment ago, by the key's SHA-256, so that a device's next
 * requests skip the lookup. Only the hash is kept (as in the database), never the key. One cache per app.
 *
 * Whatever could make an entry wrong — a key revoked or rotated, a device decommissioned, deleted or moved to
 * another fleet, an auth set rejected, an organization or fleet deleted — is a committed write, which the app's
 * event bus tells (`write.committed`; a key rotation says so itself): the cache then forgets everything, before
 * the change is answered. A lookup that read the database before that moment may not fill the cache afterwards
 * (the generation check in `put`): on PostgreSQL it may have read the row as it was before the commit. Entries
 * also expire after `CREDENTIAL_TTL_MS`, which bounds what a change made outside this process (a second server
 * on the same database, a hand-edited row) leaves cached.
 */

/** How long a verified key is believed without asking the database again, in milliseconds (30 s). */
export const CREDENTIAL_TTL_MS = 30_000;
/** Verified keys kept at most per server; the oldest go first. */
export const CREDENTIALS_KEPT = 50_000;

export interface CachedDeviceKey {
  keyId: number;
  device: { id: number; uuid: string; org_id: number; fleet_id: number };
  /** `device_keys.last_used_at` as last written (epoch ms), or null. */
  lastUsedAt: number | null;
  expiresAt: number;
}

export class DeviceKeyCache {
  private readonly entries = new Map<string, CachedDeviceKey>();
  /** Bumped by every invalidation: compared before answering or filling. */
  private generation = 0;
  private generationSeen = 0;

  /**
   * @param events the app's bus: every committed write (decommission, key revocation, auth set status, device
   *   update or delete, fleet or organization delete…) may change what a cached key stands for, so each one
   *   forgets them all. Such writes are rare next to device requests, and one miss per device afterwards is cheap.
   */
  constructor(
    events: Pick<EventBus, 'on'>,
    private readonly ttlMs = CREDENTIAL_TTL_MS,
    private readonly maxEntries = CREDENTIALS_KEPT,
  ) {
    events.on('write.committed', () => this.forget());
  }

  /** Forgets every entry, at once; lookups that began before may not fill the cache afterwards. */
  forget(): void {
    this.generation++;
  }

  /** The live entry for a key hash, or undefined. */
  get(keyHash: string, now: number): CachedDeviceKey | undefined {
    if (!this.current()) return undefined;
    const entry = this.entries.get(keyHash);
    if (entry && entry.expiresAt <= now) {
      this.entries.delete(keyHash);
      return undefined;
    }
    return entry;
  }

  /** Taken before reading the database; `put` refuses the result if an invalidation happened since. */
  snapshot(): number {
    return this.generation;
  }

  put(keyHash: string, entry: Omit<CachedDeviceKey, 'expiresAt'>, snapshot: number, now: number): void {
    if (snapshot !== this.generation) return;
    this.current();
    if (this.entries.size >= this.maxEntries) {
      // Insertion order is expiry order: the first entry is the oldest.
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.delete(keyHash);
    this.entries.set(keyHash, { ...entry, expiresAt: now + this.ttlMs });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops everything when an invalidation happened since the last look; `true` when nothing was dropped. */
  private current(): boolean {
    if (this.generationSeen === this.generation) return true;
    this.entries.clear();
    this.generationSeen = this.generation;
    return false;
  }
}
