/**
 * The audit chain: every request recorded with who and what; verify detects
 * edited, deleted, reordered and truncated rows; anchors catch a rebuilt
 * chain; the table refuses UPDATE and DELETE.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendAuditRows, chainHash, verifyAuditChain, type AuditRecord } from '../../server/audit.js';
import { Store } from '../../server/storage.js';
import { ALICE, identity, startFixture } from './helpers/fixture.js';
import { auditRows } from './helpers/raw.js';

/** A DB with a realistic audit trail (about 20 rows). */
async function auditedDatabase(): Promise<{ path: string; close(): Promise<void> }> {
  const fixture = await startFixture();
  const client = await fixture.client({ ctid: 101, pid: 4321, uid: 1000 });
  const session = await client.login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ec-p256', keyId: 'audited' });
  for (let i = 0; i < 10; i++) await session.sign(key.keyId, new Uint8Array([i]));
  await session.digest(new Uint8Array(1));
  await session.sign('missing', new Uint8Array(1)).catch(() => undefined);
  await session.logout();
  await client.login(ALICE.name, 'wrong').catch(() => undefined);
  await fixture.server.stop();
  return { path: fixture.dbPath, close: () => fixture.close() };
}

/** A scratch copy of `path` with the append-only triggers removed, as an attacker would. */
function tamperable(path: string, name: string): { path: string; db: Database.Database } {
  const copy = join(path, '..', `${name}.db`);
  copyFileSync(path, copy);
  const db = new Database(copy);
  db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
  return { path: copy, db };
}

function verifyFile(path: string, anchor?: { seq: number; hash: string }) {
  const store = Store.open(path);
  try {
    return verifyAuditChain(store.db, anchor);
  } finally {
    store.close();
  }
}

t.test('every request is recorded with its context, no secrets', async (t) => {
  const { path, close } = await auditedDatabase();
  t.teardown(close);
  const rows = (await auditRows(path));
  t.same(
    rows.map((row) => [row.op, row.result]),
    [
      ['login', 'OK'],
      ['generateKey', 'OK'],
      ...Array.from({ length: 10 }, () => ['sign', 'OK']),
      ['digest', 'OK'],
      ['sign', 'KEY_NOT_FOUND'],
      ['logout', 'OK'],
      ['login', 'BAD_CREDENTIALS'],
    ],
    'one row per request, in order, with its result',
  );
  t.ok(rows.every((row) => row.ctid === 101 && row.pid === 4321 && row.user === 'alice'), 'CTID, PID and user on every row');
  t.equal(rows.find((row) => row.op === 'generateKey')!.key_id, 'audited', 'key id recorded');
  const report = verifyFile(path);
  t.ok(report.ok, 'the chain verifies');
  t.equal(report.rows, rows.length);
  t.equal(report.headSeq, rows.length, 'head matches the last row');
});

t.test('verify detects edited, deleted, reordered and truncated rows', async (t) => {
  const { path, close } = await auditedDatabase();
  t.teardown(close);

  const edited = tamperable(path, 'edited');
  edited.db.prepare("UPDATE audit SET result = 'OK' WHERE result = 'BAD_CREDENTIALS'").run();
  edited.db.close();
  const editedReport = verifyFile(edited.path);
  t.notOk(editedReport.ok, 'an edited result is detected');
  t.equal(editedReport.problems[0]?.seq, (await auditRows(path)).length, 'at the edited row');

  const editedUser = tamperable(path, 'edited-user');
  editedUser.db.prepare("UPDATE audit SET user = 'bob' WHERE seq = 3").run();
  editedUser.db.close();
  t.same(verifyFile(editedUser.path).problems.map((p) => p.seq), [3], 'an edited user is detected at its row');

  const deleted = tamperable(path, 'deleted');
  deleted.db.prepare('DELETE FROM audit WHERE seq = 5').run();
  deleted.db.close();
  const deletedReport = verifyFile(deleted.path);
  t.notOk(deletedReport.ok, 'a deleted row is detected');
  t.ok(deletedReport.problems.some((p) => /missing/.test(p.problem)), 'reported as missing');

  const reordered = tamperable(path, 'reordered');
  const row4 = reordered.db.prepare('SELECT * FROM audit WHERE seq = 4').get() as Record<string, unknown>;
  const row14 = reordered.db.prepare('SELECT * FROM audit WHERE seq = 14').get() as Record<string, unknown>;
  const put = reordered.db.prepare('UPDATE audit SET time_ms = @time_ms, op = @op, key_id = @key_id, result = @result, user = @user, hash = @hash WHERE seq = @seq');
  put.run({ ...row14, seq: 4 });
  put.run({ ...row4, seq: 14 });
  reordered.db.close();
  const reorderedReport = verifyFile(reordered.path);
  t.notOk(reorderedReport.ok, 'swapped rows are detected');
  t.ok(reorderedReport.problems.some((p) => p.seq === 4) && reorderedReport.problems.some((p) => p.seq === 14), 'at both positions');

  const renumbered = tamperable(path, 'renumbered');
  renumbered.db.exec('UPDATE audit SET seq = -seq WHERE seq IN (6, 7); UPDATE audit SET seq = 7 WHERE seq = -6; UPDATE audit SET seq = 6 WHERE seq = -7;');
  renumbered.db.close();
  t.notOk(verifyFile(renumbered.path).ok, 'rows moved by renumbering are detected');

  const truncated = tamperable(path, 'truncated');
  truncated.db.prepare('DELETE FROM audit WHERE seq > 10').run();
  truncated.db.close();
  const truncatedReport = verifyFile(truncated.path);
  t.notOk(truncatedReport.ok, 'a truncated tail is detected through the head');
  t.match(truncatedReport.problems[0]?.problem, /truncated/);

  // An attacker who also rewrites the head and recomputes the whole chain
  // defeats the file-only check; an anchor recorded earlier does not.
  const goodAnchorRow = new Database(path, { readonly: true }).prepare('SELECT hash FROM audit WHERE seq = 8').get() as { hash: Buffer };
  const realAnchor = { seq: 8, hash: goodAnchorRow.hash.toString('hex') };
  t.ok(verifyFile(path, realAnchor).ok, 'the real chain matches its anchor');
  t.notOk(verifyFile(path, { seq: 8, hash: '00'.repeat(32) }).ok, 'a wrong anchor is reported');
  t.notOk(verifyFile(path, { seq: 999, hash: realAnchor.hash }).ok, 'an anchor beyond the chain is reported');

  const rebuilt = tamperable(path, 'rebuilt');
  rebuilt.db.prepare("UPDATE audit SET result = 'KEY_NOT_FOUND' WHERE seq = 3").run();
  let previous: Buffer = Buffer.alloc(32);
  const rows = rebuilt.db.prepare('SELECT * FROM audit ORDER BY seq').all() as Record<string, never>[];
  const fix = rebuilt.db.prepare('UPDATE audit SET hash = ? WHERE seq = ?');
  for (const row of rows) {
    const record: AuditRecord = {
      timeMs: row.time_ms,
      ctid: row.ctid,
      netnsCookie: BigInt(row.netns_cookie),
      pid: row.pid,
      uid: row.uid,
      gid: row.gid,
      user: row.user,
      op: row.op,
      keyId: row.key_id,
      result: row.result,
      ...(row.proc_start === null ? {} : { procStart: BigInt(row.proc_start) }),
    };
    previous = chainHash(previous, row.seq, record);
    fix.run(previous, row.seq);
  }
  rebuilt.db.prepare('UPDATE audit_head SET hash = ? WHERE id = 1').run(previous);
  rebuilt.db.close();
  t.ok(verifyFile(rebuilt.path).ok, 'a fully rebuilt chain passes the file-only check (documented limit)');
  t.notOk(verifyFile(rebuilt.path, realAnchor).ok, '…but not the anchor recorded before');
});

t.test('the audit table is append-only', async (t) => {
  const { path, close } = await auditedDatabase();
  t.teardown(close);
  const db = new Database(path);
  t.throws(() => db.prepare("UPDATE audit SET result = 'OK'").run(), /append-only/, 'UPDATE refused');
  t.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/, 'DELETE refused');
  db.close();
  const store = Store.open(path);
  const record: AuditRecord = { ...identity(), timeMs: 1, user: 'x', op: 'admin:test', keyId: '', result: 'OK' };
  store.write(() => appendAuditRows(store.db, [record, record]));
  t.ok(verifyAuditChain(store.db).ok, 'appending keeps the chain valid');
  store.close();
});
