/**
 * The PostgreSQL implementation of the storage seam (../backend.ts): reads
 * on the pool, changes in one transaction per batch, audit rows on this
 * server's own chain (audit.ts).
 */
import type { CommitQueue, CommitQueueOptions, KeyMetaRow, NewKeyRow, StorageBackend, StorageReads, StorageTx, WrappedKeyRow } from '../backend.js';
import type { CertificateRow } from '../certstore.js';
import { VhsmFailure } from '../errors.js';
import type { FailureState } from '../lockout.js';
import { META_COLUMNS, PAIRS_BEFORE_SCHEMA_2, toMeta, toWrapped, type RawKeyRow, type RawWrappedRow } from '../key-rows.js';
import { toUserRow, type RawUserRow, type SealedAuthKey, type UserRow } from '../users.js';
import { PgGroupCommit } from './commits.js';
import { SessionCheckBatcher, type SessionCheck } from './session-checks.js';
import { describePostgresUrl, PgStore, type PgStoreOptions, type Queryable } from './store.js';

export class PgReads implements StorageReads {
  private readonly checks: SessionCheckBatcher;

  constructor(private readonly db: Queryable) {
    this.checks = new SessionCheckBatcher(db);
  }

  async findUser(name: string): Promise<UserRow | undefined> {
    const raw = (await this.db.query<RawUserRow>('SELECT * FROM users WHERE name = $1', [name])).rows[0];
    return raw && toUserRow(raw);
  }

  async isContainerAllowed(userId: number, ctid: number): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM user_containers WHERE user_id = $1 AND container = $2', [userId, ctid])).rowCount === 1;
  }

  async failureState(userId: number, ctid: number): Promise<FailureState | undefined> {
    const row = (
      await this.db.query<{ failures: number; last_failure_ms: number; locked: boolean }>(
        'SELECT failures, last_failure_ms, locked FROM login_failures WHERE user_id = $1 AND container = $2',
        [userId, ctid],
      )
    ).rows[0];
    return row && { failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked };
  }

  async keyMeta(userId: number, keyId: string): Promise<KeyMetaRow | undefined> {
    const raw = (await this.db.query<RawKeyRow>(`SELECT ${META_COLUMNS} FROM keys WHERE user_id = $1 AND key_id = $2`, [userId, keyId])).rows[0];
    return raw && toMeta(raw);
  }

  async listKeys(userId: number, afterKeyId: string, limit: number): Promise<KeyMetaRow[]> {
    const result = await this.db.query<RawKeyRow>(`SELECT ${META_COLUMNS} FROM keys WHERE user_id = $1 AND key_id > $2 ORDER BY key_id LIMIT $3`, [
      userId,
      afterKeyId,
      limit,
    ]);
    return result.rows.map(toMeta);
  }

  async listPublicKeys(userId: number, afterKeyId: string, limit: number): Promise<{ meta: KeyMetaRow; spki: Buffer }[]> {
    const result = await this.db.query<RawKeyRow & { public_key: Buffer }>(
      `SELECT ${META_COLUMNS}, public_key FROM keys WHERE user_id = $1 AND public_key IS NOT NULL AND key_id > $2 ORDER BY key_id LIMIT $3`,
      [userId, afterKeyId, limit],
    );
    return result.rows.map((row) => ({ meta: toMeta(row), spki: row.public_key }));
  }

  async keysMissingPublic(userId: number, limit: number): Promise<WrappedKeyRow[]> {
    const result = await this.db.query<RawWrappedRow>(
      `SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys
       WHERE user_id = $1 AND public_key IS NULL AND key_type IN (${PAIRS_BEFORE_SCHEMA_2}) LIMIT $2`,
      [userId, limit],
    );
    return result.rows.map(toWrapped);
  }

  async keyRowId(userId: number, keyId: string): Promise<number | undefined> {
    return (await this.db.query<{ id: number }>('SELECT id FROM keys WHERE user_id = $1 AND key_id = $2', [userId, keyId])).rows[0]?.id;
  }

  async wrappedKey(rowId: number): Promise<WrappedKeyRow | undefined> {
    const raw = (await this.db.query<RawWrappedRow>('SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys WHERE id = $1', [rowId])).rows[0];
    return raw && toWrapped(raw);
  }

  sessionCheck(userId: number, ctid: number, keyId: string | undefined): Promise<SessionCheck> {
    return this.checks.check(userId, ctid, keyId);
  }

  async listCertificates(userId: number): Promise<CertificateRow[]> {
    const result = await this.db.query<{ cert_id: string; object_id: Buffer; label: string; der: Buffer; created_ms: number }>(
      'SELECT cert_id, object_id, label, der, created_ms FROM certificates WHERE user_id = $1 ORDER BY cert_id',
      [userId],
    );
    return result.rows.map((row) => ({ certId: row.cert_id, objectId: row.object_id, label: row.label, der: row.der, createdMs: row.created_ms }));
  }
}

/** Writes on one transaction's connection. */
export class PgTx implements StorageTx {
  constructor(private readonly db: Queryable) {}

  async countKeys(userId: number): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM keys WHERE user_id = $1', [userId])).rows[0]!.n;
  }

  async keyExists(userId: number, keyId: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM keys WHERE user_id = $1 AND key_id = $2', [userId, keyId])).rowCount === 1;
  }

  async insertKey(key: NewKeyRow): Promise<void> {
    // ON CONFLICT: a namesake created by another server since keyExists looked is still KEY_EXISTS, not an aborted batch.
    const result = await this.db.query(
      `INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms, public_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (user_id, key_id) DO NOTHING`,
      [key.userId, key.keyId, key.keyType, key.label, key.usages, key.extractable, key.lengthBytes, key.wrapped, key.createdMs, key.publicKey],
    );
    if (result.rowCount !== 1) throw new VhsmFailure('KEY_EXISTS', `key ${key.keyId} already exists`);
  }

  async deleteKey(userId: number, keyId: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM keys WHERE user_id = $1 AND key_id = $2', [userId, keyId])).rowCount === 1;
  }

  async setPublicKey(rowId: number, spki: Buffer): Promise<void> {
    await this.db.query('UPDATE keys SET public_key = $1 WHERE id = $2 AND public_key IS NULL', [spki, rowId]);
  }

  async certificateUsage(userId: number): Promise<{ count: number; bytes: number }> {
    const row = (
      await this.db.query<{ n: number; bytes: number }>(
        `SELECT count(*)::int AS n, coalesce(sum(length(object_id) + octet_length(label) + length(der)), 0)::int AS bytes
         FROM certificates WHERE user_id = $1`,
        [userId],
      )
    ).rows[0]!;
    return { count: row.n, bytes: row.bytes };
  }

  async insertCertificate(userId: number, cert: CertificateRow): Promise<void> {
    await this.db.query('INSERT INTO certificates (user_id, cert_id, object_id, label, der, created_ms) VALUES ($1, $2, $3, $4, $5, $6)', [
      userId,
      cert.certId,
      cert.objectId,
      cert.label,
      cert.der,
      cert.createdMs,
    ]);
  }

  async deleteCertificate(userId: number, certId: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM certificates WHERE user_id = $1 AND cert_id = $2', [userId, certId])).rowCount === 1;
  }

  async replaceAuthKey(userId: number, previous: Buffer, sealed: SealedAuthKey, nowMs: number): Promise<boolean> {
    const result = await this.db.query(
      `UPDATE users SET kdf_salt = $1, kdf_iterations = $2, wrapped_auth_key = $3, password_changed_ms = $4
       WHERE id = $5 AND wrapped_auth_key = $6`,
      [sealed.salt, sealed.iterations, sealed.wrapped, nowMs, userId, previous],
    );
    return result.rowCount === 1;
  }

  async recordFailure(userId: number, ctid: number, nowMs: number, lockAfter: number): Promise<FailureState> {
    // One statement: concurrent failures on several servers each add one (the row lock orders them).
    const row = (
      await this.db.query<{ failures: number; last_failure_ms: number; locked: boolean }>(
        `INSERT INTO login_failures AS f (user_id, container, failures, last_failure_ms, locked) VALUES ($1, $2, 1, $3, 1 >= $4)
         ON CONFLICT (user_id, container) DO UPDATE SET failures = f.failures + 1,
           last_failure_ms = greatest(f.last_failure_ms, excluded.last_failure_ms), locked = (f.failures + 1 >= $4)
         RETURNING failures, last_failure_ms, locked`,
        [userId, ctid, nowMs, lockAfter],
      )
    ).rows[0]!;
    return { failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked };
  }

  async resetFailures(userId: number, ctid: number): Promise<void> {
    await this.db.query('DELETE FROM login_failures WHERE user_id = $1 AND container = $2', [userId, ctid]);
  }
}

export class PgBackend implements StorageBackend {
  readonly kind = 'postgres';
  readonly checksAtCommit = true;
  readonly reads: PgReads;

  private constructor(readonly store: PgStore) {
    this.reads = new PgReads(store);
  }

  static async open(url: string, options: PgStoreOptions = {}): Promise<PgBackend> {
    return new PgBackend(await PgStore.open(url, options));
  }

  get description(): string {
    return describePostgresUrl(this.store.location);
  }

  get schemaVersion(): number {
    return this.store.schemaVersion;
  }

  openCommits(options: CommitQueueOptions): CommitQueue {
    return new PgGroupCommit(this.store, options.serverId, options.uses, options.logger, options.durability);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
