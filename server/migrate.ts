/**
 * `vhsm-admin migrate`: copies a store between SQLite and PostgreSQL (either
 * way) without decrypting anything: users (with their ids, which the
 * wrapped keys' AAD binds), allowed containers, login failures, wrapped keys,
 * certificates, and the audit trail.
 *
 * The audit: the source is verified first (a broken source is refused).
 * SQLite → PostgreSQL copies the chain as the chain "" with its seqs and
 * hashes unchanged, so it verifies against the same anchors. PostgreSQL →
 * SQLite merges the chains into SQLite's single chain (by time, then chain
 * and seq), rehashed; an `admin:migrate` row then records every source
 * chain head (in its key_id field), linking the copy to the original.
 * The destination must be empty (just created by init).
 */
import { appendAuditRows, type AuditRecord } from './audit.js';
import { openAdminStore } from './admin-store.js';
import { verifyChains } from './pg/audit.js';
import { isPostgresUrl, PgStore } from './pg/store.js';
import { Store, StorageError } from './storage.js';

type Row = Record<string, unknown>;

interface AuditDumpRow extends AuditRecord {
  readonly chain: string;
  readonly seq: number;
  readonly hash: Buffer;
}

interface StoreDump {
  readonly users: Row[];
  readonly containers: { user_id: number; ctid: number }[];
  readonly failures: { user_id: number; ctid: number; failures: number; last_failure_ms: number; locked: boolean }[];
  readonly keys: Row[];
  readonly certificates: Row[];
  readonly audit: AuditDumpRow[];
  readonly heads: { chain: string; seq: number; hash: Buffer }[];
}

export interface MigrateReport {
  readonly users: number;
  readonly keys: number;
  readonly certificates: number;
  readonly auditRows: number;
  readonly sourceChains: readonly string[];
}

const KEY_COLUMNS = ['id', 'user_id', 'key_id', 'key_type', 'label', 'usages', 'extractable', 'length_bytes', 'wrapped', 'created_ms', 'last_used_ms', 'use_count', 'public_key'];
const USER_COLUMNS = ['id', 'name', 'kdf_salt', 'kdf_iterations', 'wrapped_auth_key', 'created_ms', 'password_changed_ms'];
const CERT_COLUMNS = ['id', 'user_id', 'cert_id', 'object_id', 'label', 'der', 'created_ms'];

function auditRecordOf(raw: Row, ctidColumn: string): AuditDumpRow {
  return {
    chain: (raw.chain as string | undefined) ?? '',
    seq: Number(raw.seq),
    timeMs: Number(raw.time_ms),
    ctid: Number(raw[ctidColumn]),
    netnsCookie: BigInt(raw.netns_cookie as string),
    pid: Number(raw.pid),
    ...(raw.proc_start === null || raw.proc_start === undefined ? {} : { procStart: BigInt(raw.proc_start as string) }),
    uid: Number(raw.uid),
    gid: Number(raw.gid),
    user: raw.user as string,
    op: raw.op as string,
    keyId: raw.key_id as string,
    result: raw.result as string,
    hash: raw.hash as Buffer,
  };
}

async function dumpSqlite(path: string): Promise<StoreDump> {
  const admin = await openAdminStore(path);
  const report = await admin.verifyAudit();
  await admin.close();
  if (!report.ok) throw new StorageError('OPEN_FAILED', `the source audit chain does not verify (first problem at seq ${report.problems[0]!.seq}): not migrating`);
  const store = Store.open(path);
  try {
    const all = (sql: string) => store.db.prepare(sql).all() as Row[];
    const head = store.db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1').get() as { seq: number; hash: Buffer };
    return {
      users: all('SELECT * FROM users ORDER BY id'),
      containers: all('SELECT user_id, ctid FROM user_containers') as StoreDump['containers'],
      failures: all('SELECT * FROM login_failures').map((r) => ({ ...r, locked: r.locked !== 0 })) as StoreDump['failures'],
      keys: all('SELECT * FROM keys ORDER BY id').map((r) => ({ ...r, extractable: r.extractable !== 0 })),
      certificates: all('SELECT * FROM certificates ORDER BY id'),
      audit: all('SELECT * FROM audit ORDER BY seq').map((r) => auditRecordOf(r, 'ctid')),
      heads: head.seq > 0 ? [{ chain: '', seq: head.seq, hash: head.hash }] : [],
    };
  } finally {
    store.close();
  }
}

async function dumpPg(url: string, passwordFile?: string): Promise<StoreDump> {
  const store = await PgStore.open(url, passwordFile ? { passwordFile } : {});
  try {
    const report = await verifyChains(store);
    if (!report.ok) {
      const first = report.problems[0]!;
      throw new StorageError('OPEN_FAILED', `the source audit chain ${JSON.stringify(first.chain)} does not verify (first problem at seq ${first.seq}): not migrating`);
    }
    return await store.tx(async (db) => {
      const all = async (sql: string) => (await db.query(sql)).rows as Row[];
      return {
        users: await all('SELECT * FROM users ORDER BY id'),
        containers: (await all('SELECT user_id, container AS ctid FROM user_containers')) as StoreDump['containers'],
        failures: (await all('SELECT user_id, container AS ctid, failures, last_failure_ms, locked FROM login_failures')) as StoreDump['failures'],
        keys: await all('SELECT * FROM keys ORDER BY id'),
        certificates: await all('SELECT * FROM certificates ORDER BY id'),
        audit: (await all('SELECT * FROM audit ORDER BY time_ms, chain, seq')).map((r) => auditRecordOf(r, 'container')),
        heads: (await all('SELECT chain, seq, hash FROM audit_heads ORDER BY chain')) as StoreDump['heads'],
      };
    }, 'SERIALIZABLE');
  } finally {
    await store.close();
  }
}

async function loadPg(url: string, dump: StoreDump, passwordFile?: string): Promise<void> {
  const store = await PgStore.open(url, { create: true, ...(passwordFile ? { passwordFile } : {}) });
  try {
    await store.tx(async (db) => {
      const used = (await db.query<{ n: number }>('SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM audit) AS n')).rows[0]!.n;
      if (Number(used) !== 0) throw new StorageError('EXISTS', 'the destination database is not empty');
      const insert = async (table: string, columns: readonly string[], rows: readonly Row[]) => {
        for (const row of rows) {
          await db.query(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`, columns.map((c) => row[c] ?? null));
        }
      };
      await insert('users', USER_COLUMNS, dump.users);
      await insert('user_containers', ['user_id', 'container'], dump.containers.map((r) => ({ user_id: r.user_id, container: r.ctid })));
      await insert('login_failures', ['user_id', 'container', 'failures', 'last_failure_ms', 'locked'], dump.failures.map((r) => ({ ...r, container: r.ctid })));
      await insert('keys', KEY_COLUMNS, dump.keys);
      await insert('certificates', CERT_COLUMNS, dump.certificates);
      // New rows after the copied ones: the sequences continue past the copied ids (never reused).
      for (const table of ['users', 'keys', 'certificates']) {
        await db.query(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), greatest((SELECT max(id) FROM ${table}), 1))`);
      }
      const audit = dump.audit.map((r) => ({
        chain: r.chain, seq: r.seq, time_ms: r.timeMs, container: r.ctid, netns_cookie: r.netnsCookie.toString(10), pid: r.pid, uid: r.uid, gid: r.gid,
        user: r.user, op: r.op, key_id: r.keyId, result: r.result, proc_start: r.procStart === undefined ? null : r.procStart.toString(10), hash: r.hash,
      }));
      await insert('audit', ['chain', 'seq', 'time_ms', 'container', 'netns_cookie', 'pid', 'uid', 'gid', 'user', 'op', 'key_id', 'result', 'proc_start', 'hash'], audit);
      await insert('audit_heads', ['chain', 'seq', 'hash'], dump.heads);
    });
  } finally {
    await store.close();
  }
}

async function loadSqlite(path: string, dump: StoreDump): Promise<void> {
  const store = Store.open(path, { create: true, exclusive: true });
  try {
    store.write(() => {
      const insert = (table: string, columns: readonly string[], rows: readonly Row[]) => {
        const statement = store.db.prepare(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`);
        for (const row of rows) statement.run(...columns.map((c) => { const v = row[c] ?? null; return typeof v === 'boolean' ? Number(v) : v; }));
      };
      insert('users', USER_COLUMNS, dump.users);
      insert('user_containers', ['user_id', 'ctid'], dump.containers);
      insert('login_failures', ['user_id', 'ctid', 'failures', 'last_failure_ms', 'locked'], dump.failures);
      insert('keys', KEY_COLUMNS, dump.keys);
      insert('certificates', CERT_COLUMNS, dump.certificates);
      appendAuditRows(store.db, dump.audit);
      const heads = dump.heads.map((h) => `${h.chain}@${h.seq}:${h.hash.toString('hex')}`).join(' ');
      appendAuditRows(store.db, [
        { timeMs: Date.now(), ctid: 0, netnsCookie: 0n, pid: process.pid, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, user: '', op: 'admin:migrate', keyId: heads, result: 'OK' },
      ]);
    });
  } finally {
    store.close();
  }
}

/** Copies `from` into the empty store `to` (one SQLite, one PostgreSQL). */
export async function migrateStore(from: string, to: string, options: { passwordFile?: string } = {}): Promise<MigrateReport> {
  if (isPostgresUrl(from) === isPostgresUrl(to)) throw new StorageError('OPEN_FAILED', 'migrate copies between a SQLite file and a PostgreSQL database (one of each)');
  const dump = isPostgresUrl(from) ? await dumpPg(from, options.passwordFile) : await dumpSqlite(from);
  const chains = [...new Set(dump.audit.map((r) => r.chain))].sort();
  if (isPostgresUrl(to)) await loadPg(to, dump, options.passwordFile);
  else await loadSqlite(to, dump);
  return { users: dump.users.length, keys: dump.keys.length, certificates: dump.certificates.length, auditRows: dump.audit.length, sourceChains: chains };
}
