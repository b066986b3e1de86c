/**
 * Users' keys: rows in `keys`, wrapped under the owner's authentication key
 * with AAD binding (user id, key id, type, usages, extractable), and the
 * per-session cache of unwrapped KeyObjects.
 *
 * Every lookup is scoped by user id: a key id that exists for another user
 * is "not found", exactly like one that exists nowhere.
 */
import { userKeyAad } from './aad.js';
import type { KeyMetaRow, StorageReads, StorageTx, WrappedKeyRow } from './backend.js';
import { keyTypeSpec, spkiDerOf, type KeyTypeSpec } from './crypto/engine.js';
import { VhsmFailure } from './errors.js';
import type { KeyUses } from './key-uses.js';
import { unwrapKey, wrapKey } from './keywrap.js';
import type { CachedKey, Session } from './sessions.js';

/** A stored key's metadata with the use counts not yet written merged in; `rowId` is keys.id. */
export type KeyMeta = Omit<KeyMetaRow, 'id'> & { readonly rowId: number };

function toMeta({ id, ...row }: KeyMetaRow, uses: KeyUses): KeyMeta {
  const pending = uses.pendingFor(id);
  return {
    ...row,
    rowId: id,
    lastUsedMs: Math.max(row.lastUsedMs, pending?.lastUsedMs ?? 0),
    useCount: row.useCount + (pending?.count ?? 0),
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

export class KeyStore {
  constructor(
    private readonly reads: StorageReads,
    private readonly maxCachedKeys: number,
    /** Uses not written yet, added to what the rows say. */
    private readonly uses: KeyUses,
  ) {}

  async meta(userId: number, keyId: string): Promise<KeyMeta | undefined> {
    const row = await this.reads.keyMeta(userId, keyId);
    return row && toMeta(row, this.uses);
  }

  async list(userId: number, afterKeyId: string, limit: number): Promise<KeyMeta[]> {
    return (await this.reads.listKeys(userId, afterKeyId, limit)).map((row) => toMeta(row, this.uses));
  }

  /** Key pairs with their public keys, in key id order after `afterKeyId`. */
  async listPublic(userId: number, afterKeyId: string, limit: number): Promise<PublicKeyRow[]> {
    return (await this.reads.listPublicKeys(userId, afterKeyId, limit)).map((row) => ({ meta: toMeta(row.meta, this.uses), spki: row.spki }));
  }

  /**
   * Public keys of this user's key pairs stored before schema 2, at most
   * `limit`, computed by unwrapping them with the auth key (only a login has
   * it). Rows that fail to open are left as they are: using them reports it.
   */
  async missingPublicKeys(userId: number, authKey: Buffer, limit: number): Promise<{ rowId: number; spki: Buffer }[]> {
    const rows = await this.reads.keysMissingPublic(userId, limit);
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

  /** Wraps and inserts inside a commit. Throws KEY_EXISTS. */
  async insert(tx: StorageTx, session: Session, key: NewKey): Promise<void> {
    if (await tx.keyExists(session.userId, key.keyId)) throw new VhsmFailure('KEY_EXISTS', `key ${key.keyId} already exists`);
    const spec = keyTypeSpec(key.keyType);
    if (!spec) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'unsupported key type');
    const aad = userKeyAad({ userId: session.userId, keyId: key.keyId, keyType: key.keyType, usages: key.usages, extractable: key.extractable });
    const wrapped = wrapKey(session.authKey, key.material, aad);
    await tx.insertKey({
      userId: session.userId,
      keyId: key.keyId,
      keyType: key.keyType,
      label: key.label,
      usages: key.usages,
      extractable: key.extractable,
      lengthBytes: spec.lengthOf(key.material),
      wrapped,
      createdMs: key.createdMs,
      publicKey: key.publicKey,
    });
  }

  /**
   * The key ready for use, from the session's cache when the stored row is
   * still the one that was unwrapped, else unwrapped now. KEY_NOT_FOUND if
   * the user has no such key; KEY_CORRUPTED if its blob fails GCM.
   */
  async load(session: Session, keyId: string, known?: { readonly keyId: string; readonly rowId: number | undefined }): Promise<CachedKey> {
    // `known`: looked up a moment ago with the request's session check.
    const rowId = known !== undefined && known.keyId === keyId ? known.rowId : await this.reads.keyRowId(session.userId, keyId);
    if (rowId === undefined) {
      session.keys.delete(keyId);
      throw new VhsmFailure('KEY_NOT_FOUND', `no key ${keyId}`);
    }
    const cached = session.keys.get(keyId);
    if (cached && cached.rowId === rowId) return cached;

    const raw = await this.reads.wrappedKey(rowId);
    if (!raw) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${keyId}`);
    const loaded = this.withMaterial(session.userId, session.authKey, raw, (spec, material) => spec.load(material));
    const entry: CachedKey = { rowId: raw.id, keyId, keyType: raw.keyType, usages: raw.usages, extractable: raw.extractable, loaded };
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
  private withMaterial<T>(userId: number, authKey: Buffer, row: WrappedKeyRow, use: (spec: KeyTypeSpec, material: Buffer) => T): T {
    const binding = { userId, keyId: row.keyId, keyType: row.keyType, usages: row.usages, extractable: row.extractable };
    const material = unwrapKey(authKey, row.wrapped, userKeyAad(binding));
    const spec = keyTypeSpec(row.keyType);
    if (!material || !spec) {
      material?.fill(0);
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${row.keyId} failed its integrity check`);
    }
    try {
      return use(spec, material);
    } catch {
      throw new VhsmFailure('KEY_CORRUPTED', `stored key ${row.keyId} could not be loaded`);
    } finally {
      material.fill(0);
    }
  }
}

/** SPKI DER of a key pair's material, null for secret keys. */
export function spkiOf(spec: KeyTypeSpec, material: Buffer): Buffer | null {
  return spec.kind === 'key-pair' ? spkiDerOf(spec.load(material)) : null;
}
