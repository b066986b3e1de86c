/**
 * Users' keys: rows in `keys`, wrapped under the owner's authentication key
 * with AAD binding (user id, key id, type, usages, extractable), and the
 * per-session cache of unwrapped KeyObjects.
 *
 * Every lookup is scoped by user id: a key id that exists for another user
 * is "not found", exactly like one that exists nowhere.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { userKeyAad } from './aad.js';
import { keyTypeSpec } from './crypto/engine.js';
import { VhsmFailure } from './errors.js';
import type { KeyUses } from './key-uses.js';
import { unwrapKey, wrapKey } from './keywrap.js';
import type { CachedKey, Session } from './sessions.js';
import { prepared } from './sql.js';

export interface KeyMeta {
  readonly rowId: number;
  readonly keyId: string;
  readonly keyType: number;
  readonly label: string;
  readonly usages: number;
  readonly extractable: boolean;
  readonly lengthBytes: number;
  readonly createdMs: number;
  readonly lastUsedMs: number;
  readonly useCount: number;
}

interface RawKeyRow {
  id: number;
  key_id: string;
  key_type: number;
  label: string;
  usages: number;
  extractable: number;
  length_bytes: number;
  created_ms: number;
  last_used_ms: number;
  use_count: number;
}

const META_COLUMNS = 'id, key_id, key_type, label, usages, extractable, length_bytes, created_ms, last_used_ms, use_count';

function toMeta(raw: RawKeyRow, uses: KeyUses): KeyMeta {
  const pending = uses.pendingFor(raw.id);
  return {
    rowId: raw.id,
    keyId: raw.key_id,
    keyType: raw.key_type,
    label: raw.label,
    usages: raw.usages,
    extractable: raw.extractable !== 0,
    lengthBytes: raw.length_bytes,
    createdMs: raw.created_ms,
    lastUsedMs: Math.max(raw.last_used_ms, pending?.lastUsedMs ?? 0),
    useCount: raw.use_count + (pending?.count ?? 0),
  };
}

export interface NewKey {
  readonly keyId: string;
  readonly keyType: number;
  readonly label: string;
  readonly usages: number;
  readonly extractable: boolean;
  /** Plain material; the caller zeroes it afterwards. */
  readonly material: Buffer;
  readonly createdMs: number;
}

/** Server-chosen key id: 128 random bits as 32 lowercase hex characters. */
export function newKeyId(): string {
  return randomBytes(16).toString('hex');
}

export class KeyStore {
  constructor(
    private readonly db: Database.Database,
    private readonly maxCachedKeys: number,
    /** Uses not written yet, added to what the rows say. */
    private readonly uses: KeyUses,
  ) {}

  meta(userId: number, keyId: string): KeyMeta | undefined {
    const raw = prepared(this.db, `SELECT ${META_COLUMNS} FROM keys WHERE user_id = ? AND key_id = ?`).get(userId, keyId) as RawKeyRow | undefined;
    return raw && toMeta(raw, this.uses);
  }

  list(userId: number, afterKeyId: string, limit: number): KeyMeta[] {
    const rows = prepared(this.db, `SELECT ${META_COLUMNS} FROM keys WHERE user_id = ? AND key_id > ? ORDER BY key_id LIMIT ?`).all(
      userId,
      afterKeyId,
      limit,
    ) as RawKeyRow[];
    return rows.map((row) => toMeta(row, this.uses));
  }

  count(userId: number): number {
    return (prepared(this.db, 'SELECT count(*) AS n FROM keys WHERE user_id = ?').get(userId) as { n: number }).n;
  }

  /** Wraps and inserts; call inside a write transaction. Throws KEY_EXISTS. */
  insert(session: Session, key: NewKey): void {
    if (this.meta(session.userId, key.keyId)) throw new VhsmFailure('KEY_EXISTS', `key ${key.keyId} already exists`);
    const spec = keyTypeSpec(key.keyType);
    if (!spec) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'unsupported key type');
    const aad = userKeyAad({ userId: session.userId, keyId: key.keyId, keyType: key.keyType, usages: key.usages, extractable: key.extractable });
    const wrapped = wrapKey(session.authKey, key.material, aad);
    prepared(
      this.db,
      `INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(session.userId, key.keyId, key.keyType, key.label, key.usages, key.extractable ? 1 : 0, spec.lengthOf(key.material), wrapped, key.createdMs);
  }

  /** Deletes; call inside a write transaction. Returns false when there was no such key. */
  delete(userId: number, keyId: string): boolean {
    return prepared(this.db, 'DELETE FROM keys WHERE user_id = ? AND key_id = ?').run(userId, keyId).changes === 1;
  }

  /**
   * The key ready for use, from the session's cache when the stored row is
   * still the one that was unwrapped, else unwrapped now. KEY_NOT_FOUND if
   * the user has no such key; KEY_CORRUPTED if its blob fails GCM.
   */
  load(session: Session, keyId: string): CachedKey {
    const row = prepared(this.db, 'SELECT id FROM keys WHERE user_id = ? AND key_id = ?').get(session.userId, keyId) as { id: number } | undefined;
    if (!row) {
      session.keys.delete(keyId);
      throw new VhsmFailure('KEY_NOT_FOUND', `no key ${keyId}`);
    }
    const cached = session.keys.get(keyId);
    if (cached && cached.rowId === row.id) return cached;

    const raw = prepared(this.db, 'SELECT id, key_type, usages, extractable, wrapped FROM keys WHERE id = ?').get(row.id) as
      | { id: number; key_type: number; usages: number; extractable: number; wrapped: Buffer }
      | undefined;
    if (!raw) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${keyId}`);
    const binding = { userId: session.userId, keyId, keyType: raw.key_type, usages: raw.usages, extractable: raw.extractable !== 0 };
    const material = unwrapKey(session.authKey, raw.wrapped, userKeyAad(binding));
    const spec = keyTypeSpec(raw.key_type);
    if (!material || !spec) {
      material?.fill(0);
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${keyId} failed its integrity check`);
    }
    let entry: CachedKey;
    try {
      entry = { rowId: raw.id, keyId, keyType: raw.key_type, usages: raw.usages, extractable: raw.extractable !== 0, loaded: spec.load(material) };
    } catch {
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${keyId} could not be loaded`);
    } finally {
      material.fill(0);
    }
    if (session.keys.size >= this.maxCachedKeys) {
      const oldest = session.keys.keys().next().value;
      if (oldest !== undefined) session.keys.delete(oldest);
    }
    session.keys.set(keyId, entry);
    return entry;
  }
}
