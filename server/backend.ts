/**
 * The storage seam: what the server reads and writes, independent of where
 * it is stored. Two implementations: SQLite (one host, the embedded
 * default: sqlite-backend.ts) and PostgreSQL (several servers on one
 * database: pg/backend.ts).
 *
 * Results are `Awaitable`: SQLite answers synchronously (a request's hot
 * path costs no extra event-loop turn), PostgreSQL with promises. Callers
 * always `await`.
 *
 * Writes happen only inside a commit (`Change`), together with the request's
 * audit row: all of it is committed, or none, before the reply.
 */
import type { AuditRecord } from './audit.js';
import type { CertificateRow } from './certstore.js';
import type { KeyUses } from './key-uses.js';
import type { Logger } from './log.js';
import type { FailureState } from './lockout.js';
import type { SealedAuthKey, UserRow } from './users.js';

export type Awaitable<T> = T | Promise<T>;

/** The database cannot be reached (or dropped the connection): nothing was done; answered as UNAVAILABLE. */
export class StorageUnavailable extends Error {
  override readonly name = 'StorageUnavailable';
}

/** A key row without its wrapped material. */
export interface KeyMetaRow {
  readonly id: number;
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

/** A key row as much as unwrapping needs. */
export interface WrappedKeyRow {
  readonly id: number;
  readonly keyId: string;
  readonly keyType: number;
  readonly usages: number;
  readonly extractable: boolean;
  readonly wrapped: Buffer;
}

/** A new key row, already wrapped. */
export interface NewKeyRow {
  readonly userId: number;
  readonly keyId: string;
  readonly keyType: number;
  readonly label: string;
  readonly usages: number;
  readonly extractable: boolean;
  readonly lengthBytes: number;
  readonly wrapped: Buffer;
  readonly createdMs: number;
  readonly publicKey: Buffer | null;
}

/** Reads outside any transaction (each one a consistent snapshot of itself). */
export interface StorageReads {
  findUser(name: string): Awaitable<UserRow | undefined>;
  isContainerAllowed(userId: number, ctid: number): Awaitable<boolean>;
  failureState(userId: number, ctid: number): Awaitable<FailureState | undefined>;
  keyMeta(userId: number, keyId: string): Awaitable<KeyMetaRow | undefined>;
  listKeys(userId: number, afterKeyId: string, limit: number): Awaitable<KeyMetaRow[]>;
  listPublicKeys(userId: number, afterKeyId: string, limit: number): Awaitable<{ meta: KeyMetaRow; spki: Buffer }[]>;
  /** Key pairs stored before public keys were recorded (their SPKI is computed at login). */
  keysMissingPublic(userId: number, limit: number): Awaitable<WrappedKeyRow[]>;
  /** The row id of the user's key, undefined when there is none. */
  keyRowId(userId: number, keyId: string): Awaitable<number | undefined>;
  wrappedKey(rowId: number): Awaitable<WrappedKeyRow | undefined>;
  listCertificates(userId: number): Awaitable<CertificateRow[]>;
  /**
   * What every session request checks first, in one look: whether the
   * container is still in the user's set, and the row of the key the request
   * names (if it names one), so the hot path pays one database round trip.
   */
  sessionCheck(userId: number, ctid: number, keyId: string | undefined): Awaitable<{ allowed: boolean; keyRowId: number | undefined }>;
}

/** Reads and writes inside one commit's transaction. */
export interface StorageTx {
  countKeys(userId: number): Awaitable<number>;
  keyExists(userId: number, keyId: string): Awaitable<boolean>;
  insertKey(key: NewKeyRow): Awaitable<void>;
  /** False when there was no such key. */
  deleteKey(userId: number, keyId: string): Awaitable<boolean>;
  setPublicKey(rowId: number, spki: Buffer): Awaitable<void>;
  /** Count and listed bytes (object id + label + DER) of the user's certificates. */
  certificateUsage(userId: number): Awaitable<{ count: number; bytes: number }>;
  insertCertificate(userId: number, cert: CertificateRow): Awaitable<void>;
  deleteCertificate(userId: number, certId: string): Awaitable<boolean>;
  /** Stores a new wrapping of the auth key only if the stored one is still `previous`; false when it lost. */
  replaceAuthKey(userId: number, previous: Buffer, sealed: SealedAuthKey, nowMs: number): Awaitable<boolean>;
  /** Adds one failure atomically (whoever else counts at the same time) and returns the new state. */
  recordFailure(userId: number, ctid: number, nowMs: number, lockAfter: number): Awaitable<FailureState>;
  resetFailures(userId: number, ctid: number): Awaitable<void>;
}

/** A state change, run inside the commit that also writes its audit row. */
export type Change = (tx: StorageTx) => Awaitable<void>;

/** Which replies wait for the disk: only those of state changes, or all (SQLite; PostgreSQL commits every batch before any reply). */
export type Durability = 'changes' | 'all';

/**
 * A session check made when the request's audit row is committed instead of
 * before the work (PostgreSQL: it saves the hot path a round trip). The
 * request's reply is released only if, in the statement that writes its
 * audit row, the container is still in the user's set and the key row the
 * session signed with is still the one named `keyId`.
 */
export interface CommitCheck {
  readonly userId: number;
  readonly ctid: number;
  readonly keyId: string;
  readonly keyRowId: number;
}

/** A CommitCheck that failed: nothing of the request was written; its reply must be an error. */
export class CommitCheckFailed extends Error {
  override readonly name = 'CommitCheckFailed';
  constructor(readonly reason: 'container' | 'key') {
    super(reason === 'container' ? 'the container is no longer allowed for this user' : 'the key was deleted or replaced');
  }
}

/** The server's write path: audit rows and changes, batched (group commit). */
export interface CommitQueue {
  /**
   * Queues an audit record; resolves once it is committed. With `check`
   * (only where the backend says `checksAtCommit`), rejects with
   * CommitCheckFailed and writes nothing when the check fails.
   */
  enqueue(record: AuditRecord, check?: CommitCheck): Promise<void>;
  /** Queues `change` with its audit record; rejects with the change's own error (then neither was written). */
  commit(change: Change, record: AuditRecord): Promise<void>;
  /** Counts one use of a stored key; merged into the database with a later batch. */
  noteKeyUse(keyRowId: number, nowMs: number): void;
  /** Starts writing what is queued now. */
  flush(): void;
  /** Writes what is queued (and every pending use count) and stops. */
  close(): Promise<void>;
}

export interface CommitQueueOptions {
  readonly durability: Durability;
  readonly uses: KeyUses;
  /** This server's audit chain (PostgreSQL). */
  readonly serverId: string;
  readonly logger: Logger;
}

export interface StorageBackend {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * True: a request using a key its session holds may skip the up-front
   * session check and pass it to `enqueue` (CommitCheck). Both backends:
   * PostgreSQL saves a round trip, SQLite two read transactions (each one
   * takes and drops the WAL's shared-memory lock).
   */
  readonly checksAtCommit: boolean;
  /** For logs: no credentials. */
  readonly description: string;
  readonly schemaVersion: number;
  readonly reads: StorageReads;
  openCommits(options: CommitQueueOptions): CommitQueue;
  close(): Promise<void>;
}
