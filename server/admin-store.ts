/**
 * What vhsm-admin (and test fixtures) do to a store, on either backend:
 * users, allowed containers, locks, and the audit (admin rows, verify, show).
 */
import { appendAuditRows, readAuditRows, verifyAuditChain, type AuditAnchor, type AuditProblem, type AuditRecord, type AuditRow } from './audit.js';
import {
  pgAllowContainers,
  pgAuditAdmin,
  pgChangePassword,
  pgCreateUser,
  pgDeleteUser,
  pgDenyContainers,
  pgListUsers,
  pgUnlockUser,
} from './pg/admin.js';
import { readChainRows, verifyChains, type ChainReport } from './pg/audit.js';
import { describePostgresUrl, isPostgresUrl, PgStore } from './pg/store.js';
import { Store } from './storage.js';
import {
  allowContainers,
  changePassword,
  createUser,
  deleteUser,
  denyContainers,
  findUserByName,
  listUsers,
  unlockUser,
  type NewUser,
  type PasswordChange,
  type UserSummary,
} from './users.js';

export interface AdminVerifyReport {
  readonly ok: boolean;
  readonly rows: number;
  /** One per chain (SQLite: a single chain named ""). */
  readonly chains: readonly ChainReport[];
  readonly problems: readonly (AuditProblem & { readonly chain: string })[];
}

/**
 * An audit row as admins read it: the record, where it stands in which
 * chain, and its hash; the u64 netns cookie and process start as decimal
 * strings (beyond JSON's safe integers).
 */
export type AdminAuditRow = Omit<AuditRecord, 'netnsCookie' | 'procStart'> & {
  readonly chain: string;
  readonly seq: number;
  readonly netnsCookie: string;
  readonly procStart?: string;
  readonly hash: string;
};

export interface AdminAuditQuery {
  readonly afterSeq?: number;
  readonly chain?: string;
  readonly limit: number;
  readonly user?: string;
  readonly ctid?: number;
  readonly newestFirst?: boolean;
}

export interface AdminStore {
  readonly kind: 'sqlite' | 'postgres';
  readonly description: string;
  readonly schemaVersion: number;
  userExists(name: string): Promise<boolean>;
  createUser(user: NewUser): Promise<number>;
  changePassword(change: PasswordChange): Promise<void>;
  deleteUser(name: string): Promise<void>;
  allowContainers(name: string, ctids: readonly number[]): Promise<void>;
  denyContainers(name: string, ctids: readonly number[]): Promise<void>;
  unlockUser(name: string, ctid?: number): Promise<number>;
  listUsers(): Promise<UserSummary[]>;
  auditAdmin(records: readonly AuditRecord[]): Promise<void>;
  verifyAudit(anchors?: ReadonlyMap<string, AuditAnchor>): Promise<AdminVerifyReport>;
  auditRows(query: AdminAuditQuery): Promise<AdminAuditRow[]>;
  close(): Promise<void>;
}

export interface OpenAdminOptions {
  readonly create?: boolean;
  readonly exclusive?: boolean;
  /** PostgreSQL: a file holding the password. */
  readonly passwordFile?: string;
}


/** An audit row as `audit show` prints it: every stamped field, u64s as decimal strings. */
function toAdminRow(chain: string, r: AuditRow): AdminAuditRow {
  return {
    chain,
    seq: r.seq,
    timeMs: r.timeMs,
    ctid: r.ctid,
    netnsCookie: r.netnsCookie.toString(10),
    pid: r.pid,
    ...(r.procStart === undefined ? {} : { procStart: r.procStart.toString(10) }),
    uid: r.uid,
    gid: r.gid,
    user: r.user,
    op: r.op,
    keyId: r.keyId,
    result: r.result,
    hash: r.hash.toString('hex'),
  };
}

class SqliteAdmin implements AdminStore {
  readonly kind = 'sqlite';
  constructor(readonly store: Store) {}
  get description() {
    return this.store.path;
  }
  get schemaVersion() {
    return this.store.schemaVersion;
  }
  async userExists(name: string) {
    return findUserByName(this.store.db, name) !== undefined;
  }
  createUser(user: NewUser) {
    return createUser(this.store, user);
  }
  changePassword(change: PasswordChange) {
    return changePassword(this.store, change);
  }
  async deleteUser(name: string) {
    deleteUser(this.store, name);
  }
  async allowContainers(name: string, ctids: readonly number[]) {
    allowContainers(this.store, name, ctids);
  }
  async denyContainers(name: string, ctids: readonly number[]) {
    denyContainers(this.store, name, ctids);
  }
  async unlockUser(name: string, ctid?: number) {
    return unlockUser(this.store, name, ctid);
  }
  async listUsers() {
    return listUsers(this.store.db);
  }
  async auditAdmin(records: readonly AuditRecord[]) {
    this.store.write(() => appendAuditRows(this.store.db, records));
  }
  async verifyAudit(anchors?: ReadonlyMap<string, AuditAnchor>) {
    const report = verifyAuditChain(this.store.db, anchors?.get(''));
    return {
      ok: report.ok,
      rows: report.rows,
      chains: [{ chain: '', rows: report.rows, headSeq: report.headSeq, headHash: report.headHash }],
      problems: report.problems.map((p) => ({ ...p, chain: '' })),
    };
  }
  async auditRows(query: AdminAuditQuery) {
    if (query.chain !== undefined && query.chain !== '') return [];
    const rows = readAuditRows(this.store.db, {
      afterSeq: query.afterSeq ?? 0,
      limit: query.limit,
      ...(query.user === undefined ? {} : { user: query.user }),
      ...(query.ctid === undefined ? {} : { ctid: query.ctid }),
      newestFirst: query.newestFirst ?? false,
    });
    return rows.map((r) => toAdminRow('', r));
  }
  async close() {
    this.store.close();
  }
}

class PgAdmin implements AdminStore {
  readonly kind = 'postgres';
  constructor(readonly store: PgStore) {}
  get description() {
    return describePostgresUrl(this.store.location);
  }
  get schemaVersion() {
    return this.store.schemaVersion;
  }
  async userExists(name: string) {
    return (await this.store.query('SELECT 1 FROM users WHERE name = $1', [name])).rowCount === 1;
  }
  createUser(user: NewUser) {
    return pgCreateUser(this.store, user);
  }
  changePassword(change: PasswordChange) {
    return pgChangePassword(this.store, change);
  }
  deleteUser(name: string) {
    return pgDeleteUser(this.store, name);
  }
  allowContainers(name: string, ctids: readonly number[]) {
    return pgAllowContainers(this.store, name, ctids);
  }
  denyContainers(name: string, ctids: readonly number[]) {
    return pgDenyContainers(this.store, name, ctids);
  }
  unlockUser(name: string, ctid?: number) {
    return pgUnlockUser(this.store, name, ctid);
  }
  listUsers() {
    return pgListUsers(this.store);
  }
  auditAdmin(records: readonly AuditRecord[]) {
    return pgAuditAdmin(this.store, records);
  }
  verifyAudit(anchors?: ReadonlyMap<string, AuditAnchor>) {
    return verifyChains(this.store, anchors);
  }
  async auditRows(query: AdminAuditQuery) {
    const rows = await readChainRows(this.store, {
      limit: query.limit,
      ...(query.afterSeq ? { afterSeq: query.afterSeq } : {}),
      ...(query.chain === undefined ? {} : { chain: query.chain }),
      ...(query.user === undefined ? {} : { user: query.user }),
      ...(query.ctid === undefined ? {} : { ctid: query.ctid }),
      newestFirst: query.newestFirst ?? false,
    });
    return rows.map((r) => toAdminRow(r.chain, r));
  }
  close() {
    return this.store.close();
  }
}

export async function openAdminStore(location: string, options: OpenAdminOptions = {}): Promise<AdminStore> {
  if (isPostgresUrl(location)) {
    return new PgAdmin(await PgStore.open(location, { ...(options.create ? { create: true } : {}), ...(options.passwordFile ? { passwordFile: options.passwordFile } : {}), poolSize: 2 }));
  }
  return new SqliteAdmin(Store.open(location, { create: options.create ?? false, exclusive: options.exclusive ?? false }));
}
