/**
 * Users' keys: rows in `keys`, wrapped under the owner's authentication key
 * with AAD binding (user id, key id, type, usages, extractable), and the
 * per-session cache of unwrapped KeyObjects.
 *
 * Every lookup is scoped by user id: a key id that exists for another user
 * is "not found", exactly like one that exists nowhere.
 */
import type Database from 'better-sqlite3';
import { userKeyAad } from './aad.js';
import { keyTypeSpec, spkiDerOf, type KeyTypeSpec } from './crypto/engine.js';
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
  /** SPKI DER for key pairs (listed before login), null for secret keys. */
  readonly publicKey: Buffer | null;
  readonly createdMs: number;
}

/** A key pair's public half as the public-object listing shows it. */
export interface PublicKeyRow {
  readonly meta: KeyMeta;
  readonly spki: Buffer;
}

/** A stored row as much as unwrapping needs. */
interface WrappedRow {
  id: number;
  key_id: string;
  key_type: number;
  usages: number;
  extractable: number;
  wrapped: Buffer;
}

/**
 * The key-pair types that existed before schema 2 recorded public keys; the
 * same list as migration 2's keys_missing_public index, which the backfill
 * query must match word for word to use it.
 */
const PAIRS_BEFORE_SCHEMA_2 = '1, 2, 4, 5, 6, 7, 8, 9, 12';

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

  /** Key pairs with their public keys, in key id order after `afterKeyId`. */
  listPublic(userId: number, afterKeyId: string, limit: number): PublicKeyRow[] {
    const rows = prepared(
      this.db,
      `SELECT ${META_COLUMNS}, public_key FROM keys WHERE user_id = ? AND public_key IS NOT NULL AND key_id > ? ORDER BY key_id LIMIT ?`,
    ).all(userId, afterKeyId, limit) as (RawKeyRow & { public_key: Buffer })[];
    return rows.map((row) => ({ meta: toMeta(row, this.uses), spki: row.public_key }));
  }

  /**
   * Public keys of this user's key pairs stored before schema 2, at most
   * `limit`, computed by unwrapping them with the auth key (only a login has
   * it). Rows that fail to open are left as they are: using them reports it.
   */
  missingPublicKeys(userId: number, authKey: Buffer, limit: number): { rowId: number; spki: Buffer }[] {
    const rows = prepared(
      this.db,
      `SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys
       WHERE user_id = ? AND public_key IS NULL AND key_type IN (${PAIRS_BEFORE_SCHEMA_2}) LIMIT ?`,
    ).all(userId, limit) as WrappedRow[];
    const found: { rowId: number; spki: Buffer }[] = [];
    for (const row of rows) {
      try {
        const spki = this.withMaterial(userId, authKey, row, (spec, material) => spkiOf(spec, material));
        if (spki) found.push({ rowId: row.id, spki });
      } catch {
        // KEY_CORRUPTED: skipped here, reported when the key is used.
      }
    }
    return found;
  }

  /** Records a public key found by missingPublicKeys; call inside a write transaction. */
  setPublicKey(rowId: number, spki: Buffer): void {
    prepared(this.db, 'UPDATE keys SET public_key = ? WHERE id = ? AND public_key IS NULL').run(spki, rowId);
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
      `INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms, public_key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      session.userId,
      key.keyId,
      key.keyType,
      key.label,
      key.usages,
      key.extractable ? 1 : 0,
      spec.lengthOf(key.material),
      wrapped,
      key.createdMs,
      key.publicKey,
    );
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

    const raw = prepared(this.db, 'SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys WHERE id = ?').get(row.id) as WrappedRow | undefined;
    if (!raw) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${keyId}`);
    const loaded = this.withMaterial(session.userId, session.authKey, raw, (spec, material) => spec.load(material));
    const entry: CachedKey = { rowId: raw.id, keyId, keyType: raw.key_type, usages: raw.usages, extractable: raw.extractable !== 0, loaded };
    if (session.keys.size >= this.maxCachedKeys) {
      const oldest = session.keys.keys().next().value;
      if (oldest !== undefined) session.keys.delete(oldest);
    }
    session.keys.set(keyId, entry);
    return entry;
  }

  /**
   * Unwraps a row and hands its material to `use`, zeroing it afterwards.
   * KEY_CORRUPTED when the blob fails GCM (moved, edited, wrong owner) or
   * `use` cannot make sense of it.
   */
  private withMaterial<T>(userId: number, authKey: Buffer, row: WrappedRow, use: (spec: KeyTypeSpec, material: Buffer) => T): T {
    const binding = { userId, keyId: row.key_id, keyType: row.key_type, usages: row.usages, extractable: row.extractable !== 0 };
    const material = unwrapKey(authKey, row.wrapped, userKeyAad(binding));
    const spec = keyTypeSpec(row.key_type);
    if (!material || !spec) {
      material?.fill(0);
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${row.key_id} failed its integrity check`);
    }
    try {
      return use(spec, material);
    } catch {
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${row.key_id} could not be loaded`);
    } finally {
      material.fill(0);
    }
  }
}

/** SPKI DER of a key pair's material, null for secret keys. */
export function spkiOf(spec: KeyTypeSpec, material: Buffer): Buffer | null {
  return spec.kind === 'key-pair' ? spkiDerOf(spec.load(material)) : null;
}
