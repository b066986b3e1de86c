/**
 * Users: creation, password change, deletion, allowed containers, and
 * opening a user's authentication key with a password.
 *
 * Key hierarchy (ARCHITECTURE §5): password → PBKDF2-HMAC-SHA256 (per-user
 * salt and iteration count) → master key, never stored and zeroed after use
 * → opens the AES-256-GCM-wrapped random 256-bit authentication key. A
 * successful open proves the password. Changing the password rewraps only
 * the authentication key, so every user key stays valid.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { prepared } from './sql.js';
import { authKeyAad } from './aad.js';
import { deriveMasterKey, newSalt } from './kdf.js';
import { unwrapKey, wrapKey } from './keywrap.js';
import type { Store } from './storage.js';

export interface UserRow {
  readonly id: number;
  readonly name: string;
  readonly kdfSalt: Buffer;
  readonly kdfIterations: number;
  readonly wrappedAuthKey: Buffer;
  readonly createdMs: number;
  readonly passwordChangedMs: number;
}

export type UserErrorCode = 'NOT_FOUND' | 'EXISTS' | 'BAD_PASSWORD';

export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    readonly code: UserErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface RawUserRow {
  id: number;
  name: string;
  kdf_salt: Buffer;
  kdf_iterations: number;
  wrapped_auth_key: Buffer;
  created_ms: number;
  password_changed_ms: number;
}

export function toUserRow(raw: RawUserRow): UserRow {
  return {
    id: raw.id,
    name: raw.name,
    kdfSalt: raw.kdf_salt,
    kdfIterations: raw.kdf_iterations,
    wrappedAuthKey: raw.wrapped_auth_key,
    createdMs: raw.created_ms,
    passwordChangedMs: raw.password_changed_ms,
  };
}

export function findUserByName(db: Database.Database, name: string): UserRow | undefined {
  const raw = prepared(db, 'SELECT * FROM users WHERE name = ?').get(name) as RawUserRow | undefined;
  return raw && toUserRow(raw);
}

export function isContainerAllowed(db: Database.Database, userId: number, ctid: number): boolean {
  return prepared(db, 'SELECT 1 FROM user_containers WHERE user_id = ? AND ctid = ?').get(userId, ctid) !== undefined;
}

/** Derives the master key and opens the auth key. Returns null for a wrong password. Caller zeroes the result. */
export async function openAuthKey(user: UserRow, password: Uint8Array): Promise<Buffer | null> {
  const master = await deriveMasterKey(password, user.kdfSalt, user.kdfIterations);
  try {
    return unwrapKey(master, user.wrappedAuthKey, authKeyAad(user.id));
  } finally {
    master.fill(0);
  }
}

export interface NewUser {
  readonly name: string;
  readonly password: Uint8Array;
  readonly iterations: number;
  readonly ctids?: readonly number[];
  readonly nowMs: number;
}

export async function createUser(store: Store, user: NewUser): Promise<number> {
  const salt = newSalt();
  const master = await deriveMasterKey(user.password, salt, user.iterations);
  const authKey = randomBytes(32);
  try {
    return store.write(() => {
      if (findUserByName(store.db, user.name)) throw new UserError('EXISTS', `user ${user.name} already exists`);
      const inserted = prepared(store.db, 
          `INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms)
           VALUES (?, ?, ?, x'', ?, ?)`,
        )
        .run(user.name, salt, user.iterations, user.nowMs, user.nowMs);
      const id = Number(inserted.lastInsertRowid);
      // The AAD needs the id, which exists only after the insert; same transaction.
      const wrapped = wrapKey(master, authKey, authKeyAad(id));
      prepared(store.db, 'UPDATE users SET wrapped_auth_key = ? WHERE id = ?').run(wrapped, id);
      const allow = prepared(store.db, 'INSERT OR IGNORE INTO user_containers (user_id, ctid) VALUES (?, ?)');
      for (const ctid of user.ctids ?? []) allow.run(id, ctid);
      return id;
    });
  } finally {
    master.fill(0);
    authKey.fill(0);
  }
}

export interface PasswordChange {
  readonly name: string;
  readonly oldPassword: Uint8Array;
  readonly newPassword: Uint8Array;
  /** Iterations for the new derivation (lets an admin raise the count). */
  readonly iterations: number;
  readonly nowMs: number;
}

/** The authentication key wrapped under a new password: what a password change stores. */
export interface SealedAuthKey {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly wrapped: Buffer;
}

/** Wraps `authKey` under a master key derived from `password` with a fresh salt. */
export async function sealAuthKey(userId: number, authKey: Buffer, password: Uint8Array, iterations: number): Promise<SealedAuthKey> {
  const salt = newSalt();
  const master = await deriveMasterKey(password, salt, iterations);
  try {
    return { salt, iterations, wrapped: wrapKey(master, authKey, authKeyAad(userId)) };
  } finally {
    master.fill(0);
  }
}

/**
 * Stores a new wrapping of the user's auth key, only if the stored one is
 * still `previous` (the one the old password opened), so of two concurrent
 * changes one wins. Call inside a write transaction; false when it lost.
 */
export function replaceAuthKey(db: Database.Database, userId: number, previous: Buffer, sealed: SealedAuthKey, nowMs: number): boolean {
  const updated = prepared(
    db,
    `UPDATE users SET kdf_salt = ?, kdf_iterations = ?, wrapped_auth_key = ?, password_changed_ms = ?
     WHERE id = ? AND wrapped_auth_key = ?`,
  ).run(sealed.salt, sealed.iterations, sealed.wrapped, nowMs, userId, previous);
  return updated.changes === 1;
}

export async function changePassword(store: Store, change: PasswordChange): Promise<void> {
  const user = findUserByName(store.db, change.name);
  if (!user) throw new UserError('NOT_FOUND', `no user ${change.name}`);
  const authKey = await openAuthKey(user, change.oldPassword);
  if (!authKey) throw new UserError('BAD_PASSWORD', 'the current password is wrong');
  try {
    const sealed = await sealAuthKey(user.id, authKey, change.newPassword, change.iterations);
    store.write(() => {
      if (!replaceAuthKey(store.db, user.id, user.wrappedAuthKey, sealed, change.nowMs)) {
        throw new UserError('NOT_FOUND', `user ${change.name} changed or was deleted meanwhile`);
      }
    });
  } finally {
    authKey.fill(0);
  }
}

/** Deletes the user, their keys, allowed containers and failure records. */
export function deleteUser(store: Store, name: string): void {
  store.write(() => {
    const result = prepared(store.db, 'DELETE FROM users WHERE name = ?').run(name);
    if (result.changes === 0) throw new UserError('NOT_FOUND', `no user ${name}`);
  });
}

function requireUserId(db: Database.Database, name: string): number {
  const row = prepared(db, 'SELECT id FROM users WHERE name = ?').get(name) as { id: number } | undefined;
  if (!row) throw new UserError('NOT_FOUND', `no user ${name}`);
  return row.id;
}

export function allowContainers(store: Store, name: string, ctids: readonly number[]): void {
  store.write(() => {
    const id = requireUserId(store.db, name);
    const insert = prepared(store.db, 'INSERT OR IGNORE INTO user_containers (user_id, ctid) VALUES (?, ?)');
    for (const ctid of ctids) insert.run(id, ctid);
  });
}

export function denyContainers(store: Store, name: string, ctids: readonly number[]): void {
  store.write(() => {
    const id = requireUserId(store.db, name);
    const remove = prepared(store.db, 'DELETE FROM user_containers WHERE user_id = ? AND ctid = ?');
    for (const ctid of ctids) remove.run(id, ctid);
  });
}

/** Clears failure counters and locks for the user (all containers, or one). Returns how many were cleared. */
export function unlockUser(store: Store, name: string, ctid?: number): number {
  return store.write(() => {
    const id = requireUserId(store.db, name);
    const result =
      ctid === undefined
        ? prepared(store.db, 'DELETE FROM login_failures WHERE user_id = ?').run(id)
        : prepared(store.db, 'DELETE FROM login_failures WHERE user_id = ? AND ctid = ?').run(id, ctid);
    return result.changes;
  });
}

export interface ContainerLockState {
  readonly ctid: number;
  readonly failures: number;
  readonly lastFailureMs: number;
  readonly locked: boolean;
}

export interface UserSummary {
  readonly name: string;
  readonly createdMs: number;
  readonly passwordChangedMs: number;
  readonly kdfIterations: number;
  readonly allowedCtids: readonly number[];
  readonly keyCount: number;
  readonly failures: readonly ContainerLockState[];
  readonly locked: boolean;
}

export function listUsers(db: Database.Database): UserSummary[] {
  const users = prepared(db, 'SELECT id, name, created_ms, password_changed_ms, kdf_iterations FROM users ORDER BY name').all() as {
    id: number;
    name: string;
    created_ms: number;
    password_changed_ms: number;
    kdf_iterations: number;
  }[];
  const ctids = prepared(db, 'SELECT ctid FROM user_containers WHERE user_id = ? ORDER BY ctid');
  const keys = prepared(db, 'SELECT count(*) AS n FROM keys WHERE user_id = ?');
  const failures = prepared(db, 'SELECT ctid, failures, last_failure_ms, locked FROM login_failures WHERE user_id = ? ORDER BY ctid');
  return users.map((user) => {
    const lockStates = (failures.all(user.id) as { ctid: number; failures: number; last_failure_ms: number; locked: number }[]).map(
      (row) => ({ ctid: row.ctid, failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked !== 0 }),
    );
    return {
      name: user.name,
      createdMs: user.created_ms,
      passwordChangedMs: user.password_changed_ms,
      kdfIterations: user.kdf_iterations,
      allowedCtids: (ctids.all(user.id) as { ctid: number }[]).map((row) => row.ctid),
      keyCount: (keys.get(user.id) as { n: number }).n,
      failures: lockStates,
      locked: lockStates.some((state) => state.locked),
    };
  });
}
