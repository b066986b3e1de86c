/**
 * vhsm-admin's operations on PostgreSQL: the same as users.ts does on
 * SQLite, each in one transaction. Admin actions are audited on the chain
 * "admin" (concurrent admins on several hosts queue on its head's row lock).
 */
import { randomBytes } from 'node:crypto';
import { authKeyAad } from '../aad.js';
import type { AuditRecord } from '../audit.js';
import { deriveMasterKey, newSalt } from '../kdf.js';
import { wrapKey } from '../keywrap.js';
import { openAuthKey, sealAuthKey, UserError, type NewUser, type PasswordChange, type UserSummary } from '../users.js';
import { appendChainRows, readChainHead } from './audit.js';
import { PgReads, PgTx } from './backend.js';
import type { PgStore, Queryable } from './store.js';

export const ADMIN_CHAIN = 'admin';

async function requireUserId(db: Queryable, name: string): Promise<number> {
  const row = (await db.query<{ id: number }>('SELECT id FROM users WHERE name = $1', [name])).rows[0];
  if (!row) throw new UserError('NOT_FOUND', `no user ${name}`);
  return row.id;
}

export async function pgCreateUser(store: PgStore, user: NewUser): Promise<number> {
  const salt = newSalt();
  const master = await deriveMasterKey(user.password, salt, user.iterations);
  const authKey = randomBytes(32);
  try {
    return await store.tx(async (db) => {
      const inserted = await db.query<{ id: number }>(
        `INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms)
         VALUES ($1, $2, $3, '\\x', $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id`,
        [user.name, salt, user.iterations, user.nowMs],
      );
      const id = inserted.rows[0]?.id;
      if (id === undefined) throw new UserError('EXISTS', `user ${user.name} already exists`);
      // The AAD needs the id, which exists only after the insert; same transaction.
      await db.query('UPDATE users SET wrapped_auth_key = $1 WHERE id = $2', [wrapKey(master, authKey, authKeyAad(id)), id]);
      for (const ctid of user.ctids ?? []) {
        await db.query('INSERT INTO user_containers (user_id, container) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, ctid]);
      }
      return id;
    });
  } finally {
    master.fill(0);
    authKey.fill(0);
  }
}

export async function pgChangePassword(store: PgStore, change: PasswordChange): Promise<void> {
  const user = await new PgReads(store).findUser(change.name);
  if (!user) throw new UserError('NOT_FOUND', `no user ${change.name}`);
  const authKey = await openAuthKey(user, change.oldPassword);
  if (!authKey) throw new UserError('BAD_PASSWORD', 'the current password is wrong');
  try {
    const sealed = await sealAuthKey(user.id, authKey, change.newPassword, change.iterations);
    await store.tx(async (db) => {
      if (!(await new PgTx(db).replaceAuthKey(user.id, user.wrappedAuthKey, sealed, change.nowMs))) {
        throw new UserError('NOT_FOUND', `user ${change.name} changed or was deleted meanwhile`);
      }
    });
  } finally {
    authKey.fill(0);
  }
}

export async function pgDeleteUser(store: PgStore, name: string): Promise<void> {
  const result = await store.query('DELETE FROM users WHERE name = $1', [name]);
  if (result.rowCount === 0) throw new UserError('NOT_FOUND', `no user ${name}`);
}

export async function pgAllowContainers(store: PgStore, name: string, ctids: readonly number[]): Promise<void> {
  await store.tx(async (db) => {
    const id = await requireUserId(db, name);
    for (const ctid of ctids) await db.query('INSERT INTO user_containers (user_id, container) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, ctid]);
  });
}

export async function pgDenyContainers(store: PgStore, name: string, ctids: readonly number[]): Promise<void> {
  await store.tx(async (db) => {
    const id = await requireUserId(db, name);
    for (const ctid of ctids) await db.query('DELETE FROM user_containers WHERE user_id = $1 AND container = $2', [id, ctid]);
  });
}

export async function pgUnlockUser(store: PgStore, name: string, ctid?: number): Promise<number> {
  return store.tx(async (db) => {
    const id = await requireUserId(db, name);
    const result =
      ctid === undefined
        ? await db.query('DELETE FROM login_failures WHERE user_id = $1', [id])
        : await db.query('DELETE FROM login_failures WHERE user_id = $1 AND container = $2', [id, ctid]);
    return result.rowCount ?? 0;
  });
}

export async function pgListUsers(store: PgStore): Promise<UserSummary[]> {
  return store.tx(
    async (db) => {
      const users = (
        await db.query<{ id: number; name: string; created_ms: number; password_changed_ms: number; kdf_iterations: number }>(
          'SELECT id, name, created_ms, password_changed_ms, kdf_iterations FROM users ORDER BY name COLLATE "C"',
        )
      ).rows;
      const summaries: UserSummary[] = [];
      for (const user of users) {
        const ctids = (await db.query<{ container: number }>('SELECT container FROM user_containers WHERE user_id = $1 ORDER BY container', [user.id])).rows;
        const keys = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM keys WHERE user_id = $1', [user.id])).rows[0]!.n;
        const failures = (
          await db.query<{ container: number; failures: number; last_failure_ms: number; locked: boolean }>(
            'SELECT container, failures, last_failure_ms, locked FROM login_failures WHERE user_id = $1 ORDER BY container',
            [user.id],
          )
        ).rows.map((row) => ({ ctid: row.container, failures: row.failures, lastFailureMs: row.last_failure_ms, locked: row.locked }));
        summaries.push({
          name: user.name,
          createdMs: user.created_ms,
          passwordChangedMs: user.password_changed_ms,
          kdfIterations: user.kdf_iterations,
          allowedCtids: ctids.map((row) => row.container),
          keyCount: keys,
          failures,
          locked: failures.some((state) => state.locked),
        });
      }
      return summaries;
    },
    'SERIALIZABLE',
  );
}

/** Appends admin records to the admin chain (retrying when another admin moved its head). */
export async function pgAuditAdmin(store: PgStore, records: readonly AuditRecord[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await appendChainRows(store, ADMIN_CHAIN, await readChainHead(store, ADMIN_CHAIN), records);
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}
