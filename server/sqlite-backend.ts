/**
 * The SQLite implementation of the storage seam (backend.ts): synchronous
 * prepared statements on the server's connection, and the group commit with
 * its off-loop WAL flush and checkpointer.
 */
import type Database from 'better-sqlite3';
import type { CommitQueue, CommitQueueOptions, KeyMetaRow, NewKeyRow, StorageBackend, StorageReads, StorageTx, WrappedKeyRow } from './backend.js';
import type { CertificateRow } from './certstore.js';
import { Checkpointer } from './checkpointer.js';
import { GroupCommit } from './group-commit.js';
import { META_COLUMNS, PAIRS_BEFORE_SCHEMA_2, toMeta, toWrapped, type RawKeyRow, type RawWrappedRow } from './key-rows.js';
import type { FailureState } from './lockout.js';
import { prepared } from './sql.js';
import { Store } from './storage.js';
import { findUserByName, isContainerAllowed, replaceAuthKey, type SealedAuthKey, type UserRow } from './users.js';
import { WalSync } from './wal-sync.js';

export class SqliteReads implements StorageReads {
  constructor(private readonly db: Database.Database) {}

  findUser(name: string): UserRow | undefined {
    return findUserByName(this.db, name);
  }

  isContainerAllowed(userId: number, ctid: number): boolean {
    return isContainerAllowed(this.db, userId, ctid);
  }

  failureState(userId: number, ctid: number): FailureState | undefined {
    const row = prepared(this.db, 'SELECT failures, last_failure_ms, locked FROM login_failures WHERE user_id = ? AND ctid = ?').get(userId, ctid) as
      | { failures: number; last_failure_ms: number; locked: number }
      | undefined;
    return row && { failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked !== 0 };
  }

  keyMeta(userId: number, keyId: string): KeyMetaRow | undefined {
    const raw = prepared(this.db, `SELECT ${META_COLUMNS} FROM keys WHERE user_id = ? AND key_id = ?`).get(userId, keyId) as RawKeyRow | undefined;
    return raw && toMeta(raw);
  }

  listKeys(userId: number, afterKeyId: string, limit: number): KeyMetaRow[] {
    const rows = prepared(this.db, `SELECT ${META_COLUMNS} FROM keys WHERE user_id = ? AND key_id > ? ORDER BY key_id LIMIT ?`).all(userId, afterKeyId, limit) as RawKeyRow[];
    return rows.map(toMeta);
  }

  listPublicKeys(userId: number, afterKeyId: string, limit: number): { meta: KeyMetaRow; spki: Buffer }[] {
    const rows = prepared(
      this.db,
      `SELECT ${META_COLUMNS}, public_key FROM keys WHERE user_id = ? AND public_key IS NOT NULL AND key_id > ? ORDER BY key_id LIMIT ?`,
    ).all(userId, afterKeyId, limit) as (RawKeyRow & { public_key: Buffer })[];
    return rows.map((row) => ({ meta: toMeta(row), spki: row.public_key }));
  }

  keysMissingPublic(userId: number, limit: number): WrappedKeyRow[] {
    const rows = prepared(
      this.db,
      `SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys
       WHERE user_id = ? AND public_key IS NULL AND key_type IN (${PAIRS_BEFORE_SCHEMA_2}) LIMIT ?`,
    ).all(userId, limit) as RawWrappedRow[];
    return rows.map(toWrapped);
  }

  keyRowId(userId: number, keyId: string): number | undefined {
    return (prepared(this.db, 'SELECT id FROM keys WHERE user_id = ? AND key_id = ?').get(userId, keyId) as { id: number } | undefined)?.id;
  }

  wrappedKey(rowId: number): WrappedKeyRow | undefined {
    const raw = prepared(this.db, 'SELECT id, key_id, key_type, usages, extractable, wrapped FROM keys WHERE id = ?').get(rowId) as RawWrappedRow | undefined;
    return raw && toWrapped(raw);
  }

  sessionCheck(userId: number, ctid: number, keyId: string | undefined): { allowed: boolean; keyRowId: number | undefined } {
    const allowed = this.isContainerAllowed(userId, ctid);
    return { allowed, keyRowId: allowed && keyId !== undefined ? this.keyRowId(userId, keyId) : undefined };
  }

  listCertificates(userId: number): CertificateRow[] {
    const rows = prepared(this.db, 'SELECT cert_id, object_id, label, der, created_ms FROM certificates WHERE user_id = ? ORDER BY cert_id').all(userId) as {
      cert_id: string;
      object_id: Buffer;
      label: string;
      der: Buffer;
      created_ms: number;
    }[];
    return rows.map((row) => ({ certId: row.cert_id, objectId: row.object_id, label: row.label, der: row.der, createdMs: row.created_ms }));
  }
}

/** Writes on the server's connection; GroupCommit runs them inside its transaction. */
export class SqliteTx implements StorageTx {
  constructor(private readonly db: Database.Database) {}

  countKeys(userId: number): number {
    return (prepared(this.db, 'SELECT count(*) AS n FROM keys WHERE user_id = ?').get(userId) as { n: number }).n;
  }

  keyExists(userId: number, keyId: string): boolean {
    return prepared(this.db, 'SELECT 1 FROM keys WHERE user_id = ? AND key_id = ?').get(userId, keyId) !== undefined;
  }

  insertKey(key: NewKeyRow): void {
    prepared(
      this.db,
      `INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms, public_key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(key.userId, key.keyId, key.keyType, key.label, key.usages, key.extractable ? 1 : 0, key.lengthBytes, key.wrapped, key.createdMs, key.publicKey);
  }

  deleteKey(userId: number, keyId: string): boolean {
    return prepared(this.db, 'DELETE FROM keys WHERE user_id = ? AND key_id = ?').run(userId, keyId).changes === 1;
  }

  setPublicKey(rowId: number, spki: Buffer): void {
    prepared(this.db, 'UPDATE keys SET public_key = ? WHERE id = ? AND public_key IS NULL').run(spki, rowId);
  }

  certificateUsage(userId: number): { count: number; bytes: number } {
    const used = prepared(
      this.db,
      `SELECT count(*) AS n, coalesce(sum(length(object_id) + length(CAST(label AS BLOB)) + length(der)), 0) AS bytes
       FROM certificates WHERE user_id = ?`,
    ).get(userId) as { n: number; bytes: number };
    return { count: used.n, bytes: used.bytes };
  }

  insertCertificate(userId: number, cert: CertificateRow): void {
    prepared(this.db, 'INSERT INTO certificates (user_id, cert_id, object_id, label, der, created_ms) VALUES (?, ?, ?, ?, ?, ?)').run(
      userId,
      cert.certId,
      cert.objectId,
      cert.label,
      cert.der,
      cert.createdMs,
    );
  }

  deleteCertificate(userId: number, certId: string): boolean {
    return prepared(this.db, 'DELETE FROM certificates WHERE user_id = ? AND cert_id = ?').run(userId, certId).changes === 1;
  }

  replaceAuthKey(userId: number, previous: Buffer, sealed: SealedAuthKey, nowMs: number): boolean {
    return replaceAuthKey(this.db, userId, previous, sealed, nowMs);
  }

  recordFailure(userId: number, ctid: number, nowMs: number, lockAfter: number): FailureState {
    const row = prepared(
      this.db,
      `INSERT INTO login_failures (user_id, ctid, failures, last_failure_ms, locked) VALUES (@userId, @ctid, 1, @nowMs, 1 >= @lockAfter)
       ON CONFLICT (user_id, ctid) DO UPDATE SET failures = failures + 1,
         last_failure_ms = max(last_failure_ms, excluded.last_failure_ms), locked = (failures + 1 >= @lockAfter)
       RETURNING failures, last_failure_ms, locked`,
    ).get({ userId, ctid, nowMs, lockAfter }) as { failures: number; last_failure_ms: number; locked: number };
    return { failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked !== 0 };
  }

  resetFailures(userId: number, ctid: number): void {
    prepared(this.db, 'DELETE FROM login_failures WHERE user_id = ? AND ctid = ?').run(userId, ctid);
  }
}

/** A SQLite file opened for the server (vhsm-admin uses Store directly). */
export class SqliteBackend implements StorageBackend {
  readonly kind = 'sqlite';
  readonly checksAtCommit = true;
  readonly reads: SqliteReads;

  private constructor(readonly store: Store) {
    this.reads = new SqliteReads(store.db);
  }

  static open(path: string): SqliteBackend {
    return new SqliteBackend(Store.open(path));
  }

  get description(): string {
    return this.store.path;
  }

  get schemaVersion(): number {
    return this.store.schemaVersion;
  }

  openCommits(options: CommitQueueOptions): CommitQueue {
    // Commits only write the WAL; WalSync fsyncs it on the libuv pool (same
    // guarantee as synchronous=FULL for whoever waits, without blocking the loop).
    this.store.db.pragma('synchronous = NORMAL');
    const wal = WalSync.open(this.store.path, { maxDelayMs: WAL_MAX_UNFLUSHED_MS });
    return new GroupCommit(this.store, new SqliteTx(this.store.db), wal, new Checkpointer(this.store, options.logger), options.uses, options.durability);
  }

  async close(): Promise<void> {
    this.store.close();
  }
}

/** A read-only request's audit row reaches the disk at most this long after its reply. */
const WAL_MAX_UNFLUSHED_MS = 10;
