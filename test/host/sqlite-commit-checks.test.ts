/**
 * SQLite's group commit makes the session check of a request on a key its
 * session holds (backend.ts CommitCheck) inside the batch's transaction, as
 * PostgreSQL does in its audit statement: a request whose container left
 * the user's set or whose key row changed gets no audit row and is refused
 * with the reason; the batch's other rows are written and the chain holds.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommitCheckFailed } from '../../server/backend.js';
import { readAuditRows, verifyAuditChain, type AuditRecord } from '../../server/audit.js';
import { KeyUses } from '../../server/key-uses.js';
import { silentLogger } from '../../server/log.js';
import { SqliteBackend } from '../../server/sqlite-backend.js';
import { Store } from '../../server/storage.js';

function record(i: number): AuditRecord {
  return { timeMs: 1_700_000_000_000 + i, ctid: 101, netnsCookie: 101007n, pid: 4242, procStart: 99n, uid: 0, gid: 0, user: 'alice', op: 'sign', keyId: `k${i}`, result: 'OK' };
}

t.test('a failing CommitCheck refuses its own request only, with the reason, and writes no row for it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-commit-checks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'vhsm.db');
  const setup = Store.open(path, { create: true });
  const db = setup.db;
  const userId = Number(db.prepare("INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms) VALUES ('alice', x'00', 1, x'00', 0, 0)").run().lastInsertRowid);
  db.prepare('INSERT INTO user_containers (user_id, ctid) VALUES (?, 101)').run(userId);
  const keyRow = Number(db.prepare("INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms) VALUES (?, 'k', 1, '', 1, 0, 32, x'00', 0)").run(userId).lastInsertRowid);
  setup.close();

  const backend = SqliteBackend.open(path);
  t.ok(backend.checksAtCommit, 'SQLite checks at commit');
  const commits = backend.openCommits({ durability: 'changes', uses: new KeyUses(60_000), serverId: 'test', logger: silentLogger });
  const good = { userId, ctid: 101, keyId: 'k', keyRowId: keyRow };
  // One event-loop turn: one batch.
  const outcomes = await Promise.allSettled([
    commits.enqueue(record(1), good),
    commits.enqueue(record(2), { ...good, ctid: 102 }),
    commits.enqueue(record(3)),
    commits.enqueue(record(4), { ...good, keyRowId: keyRow + 1 }),
    commits.enqueue(record(5), { ...good, keyId: 'other' }),
    commits.enqueue(record(6), good),
  ]);
  const reasons = outcomes.map((o) => (o.status === 'fulfilled' ? 'written' : o.reason instanceof CommitCheckFailed ? o.reason.reason : String(o.reason)));
  t.same(reasons, ['written', 'container', 'written', 'key', 'key', 'written'], 'each request refused for its own reason, the others written');
  await commits.close();
  await backend.close();

  const check = Store.open(path);
  t.teardown(() => check.close());
  t.same(readAuditRows(check.db).map((row) => row.keyId), ['k1', 'k3', 'k6'], 'rows only for the requests answered');
  t.equal(verifyAuditChain(check.db).ok, true, 'the chain verifies');
});
