/**
 * The PostgreSQL store: init creates the schema, opening an empty database
 * without `create` fails, a newer schema is refused, URLs with passwords are
 * refused, the per-server audit chains append, refuse rewriting, and
 * verify (naming the first bad row of the bad chain), and the group commit
 * splits a large batch in two.
 */
import t from 'tap';
import pg from 'pg';
import { StorageError } from '../../server/storage.js';
import { CommitCheckFailed } from '../../server/backend.js';
import { PgStore, PG_SCHEMA_VERSION } from '../../server/pg/store.js';
import { appendChainRows, ChainConflict, ChecksFailed, hashChainRows, readChainHead, readChainRows, verifyChains, writeChainRows } from '../../server/pg/audit.js';
import type { AuditRecord } from '../../server/audit.js';
import { PgGroupCommit } from '../../server/pg/commits.js';
import { KeyUses } from '../../server/key-uses.js';
import { silentLogger } from '../../server/log.js';
import { freshPgDatabase } from './helpers/pg.js';

function record(i: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return { timeMs: 1_700_000_000_000 + i, ctid: 101, netnsCookie: 101007n, pid: 4242, procStart: 99n, uid: 0, gid: 0, user: 'alice', op: 'sign', keyId: 'k', result: 'OK', ...overrides };
}

t.test('init creates the schema; open needs it; a newer one is refused', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  await t.rejects(PgStore.open(db.url), { code: 'NOT_FOUND' });
  const store = await PgStore.open(db.url, { create: true });
  t.equal(store.schemaVersion, PG_SCHEMA_VERSION);
  await store.query('UPDATE vhsm_schema SET version = version + 1');
  await store.close();
  await t.rejects(PgStore.open(db.url), { code: 'NEWER_SCHEMA' });
});

t.test('CommitChecks: a batch with a failing check writes nothing and names the rows', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true });
  t.teardown(() => store.close());
  const userId = (await store.query<{ id: number }>("INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms) VALUES ('alice', '\\x00', 1, '\\x00', 0, 0) RETURNING id")).rows[0]!.id;
  await store.query('INSERT INTO user_containers (user_id, container) VALUES ($1, 101)', [userId]);
  const keyRow = (await store.query<{ id: number }>("INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms) VALUES ($1, 'k', 1, '', 1, false, 32, '\\x00', 0) RETURNING id", [userId])).rows[0]!.id;
  const good = { userId, ctid: 101, keyId: 'k', keyRowId: keyRow };
  const head = await readChainHead(store, 'c');
  const rows = hashChainRows(head, 'c', [record(1), record(2), record(3), record(4), record(5), record(6)]);
  // A check repeated by several rows is sent once: each of its rows fails with it.
  const checks = [good, { ...good, ctid: 102 }, undefined, { ...good, keyRowId: keyRow + 1 }, { ...good, ctid: 102 }, good];
  const error = await writeChainRows(store, 'c', head, rows, undefined, checks).catch((e: unknown) => e);
  t.ok(error instanceof ChecksFailed, 'refused');
  t.same([...(error as ChecksFailed).failed].map(([i, why]) => [i, why.reason]).sort(), [[1, 'container'], [3, 'key'], [4, 'container']], 'rows 1 and 4 (container), 3 (key row replaced)');
  t.equal((await readChainHead(store, 'c')).seq, 0, 'nothing written');
  await writeChainRows(store, 'c', head, hashChainRows(head, 'c', [record(1), record(3)]), undefined, [good, undefined]);
  t.equal((await readChainHead(store, 'c')).seq, 2, 'the others are written once the failing rows are left out');
});

t.test('rows travel as their hashed JSON encoding: every column comes back exactly, the chain verifies', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true });
  t.teardown(() => store.close());
  // Values JSON escapes or that overflow a double, and a row without procStart (its column is NULL).
  const awkward = [
    record(1, { user: 'ß "q" \\ \u00e9\u4e2d\ud83d\udd11', keyId: 'k,{1}', op: 'o\tp', netnsCookie: 18_446_744_073_709_551_615n, procStart: 18_446_744_073_709_551_614n }),
    record(2, { procStart: undefined, pid: 4_294_967_295, uid: 4_294_967_295, gid: 65_534, ctid: 4_294_967_295, timeMs: 8_640_000_000_000_000 }),
    record(3, { user: '', keyId: '' }),
  ];
  const head = await appendChainRows(store, 'host-x', await readChainHead(store, 'host-x'), awkward);
  t.equal(head.seq, 3);
  const back = (await readChainRows(store, { chain: 'host-x' })).sort((a, b) => a.seq - b.seq); // listed by time
  const defined = (r: AuditRecord) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
  t.strictSame(back.map(({ chain, seq, hash, ...rest }) => [chain, seq, hash.length, rest]), awkward.map((r, i) => ['host-x', i + 1, 32, defined(r)]), 'every field as sent');
  t.equal(back[1]!.procStart, undefined, 'an absent procStart stays absent');
  const report = await verifyChains(store);
  t.ok(report.ok, 'the stored columns hash to the stored hashes');
  t.throws(() => hashChainRows(head, '', [record(4)]), /copied, never appended/, 'the migrated chain is not appended to');
});

t.test('session settings go into the URL: prepared statements planned once, audit-only commits unflushed, the URL\'s own options kept', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  await (await PgStore.open(db.url, { create: true })).close();
  const store = await PgStore.open(`${db.url}&options=${encodeURIComponent('-c work_mem=5MB')}`);
  t.teardown(() => store.close());
  const show = async (run: (sql: string) => Promise<pg.QueryResult>, name: string) => Object.values((await run(`SHOW ${name}`)).rows[0]!)[0];
  for (const [label, run] of [['main pool', (sql: string) => store.query(sql)], ['audit pool', (sql: string) => store.queryUnflushed(sql)]] as const) {
    t.equal(await show(run, 'plan_cache_mode'), 'force_generic_plan', `${label}: generic plans`);
    t.equal(await show(run, 'work_mem'), '5MB', `${label}: the URL's options kept`);
  }
  t.equal(await show((sql) => store.query(sql), 'synchronous_commit'), 'on', 'main pool: commits wait for the flush');
  t.equal(await show((sql) => store.queryUnflushed(sql), 'synchronous_commit'), 'off', 'audit pool: they do not');
});

t.test('a URL with a password is refused before connecting', async (t) => {
  const error = await PgStore.open('postgres://vhsm:s3cret@localhost/vhsm').catch((e: unknown) => e);
  t.ok(error instanceof StorageError);
  t.notMatch((error as Error).message, /s3cret/);
});

t.test('chains: one per writer, append-only, verified with the first bad row named', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true });
  t.teardown(() => store.close());

  let a = await readChainHead(store, 'host-a');
  let b = await readChainHead(store, 'host-b');
  for (let i = 0; i < 5; i++) {
    a = await appendChainRows(store, 'host-a', a, [record(i), record(i + 100)]);
    b = await appendChainRows(store, 'host-b', b, [record(i, { ctid: 102 })]);
  }
  t.equal(a.seq, 10);
  t.equal(b.seq, 5);
  // A writer with a stale head (another server using the same id) writes nothing.
  await t.rejects(appendChainRows(store, 'host-a', { seq: 3, hash: Buffer.alloc(32) }, [record(9)]), ChainConflict);
  // Nor does one with the right seq but another hash (a batch hashed onto a predecessor that was written differently).
  await t.rejects(appendChainRows(store, 'host-a', { seq: a.seq, hash: Buffer.alloc(32) }, [record(9)]), ChainConflict);
  // A batch sent after another must not start a chain that has no head yet.
  await t.rejects(appendChainRows(store, 'host-new', { seq: 4, hash: Buffer.alloc(32) }, [record(9)]), ChainConflict);
  t.equal((await readChainHead(store, 'host-new')).seq, 0, 'the new chain is still empty');

  const good = await verifyChains(store);
  t.ok(good.ok, JSON.stringify(good.problems));
  t.equal(good.rows, 15);
  t.same(good.chains.map((c) => [c.chain, c.headSeq]), [['host-a', 10], ['host-b', 5]]);

  await t.rejects(store.query(`UPDATE audit SET result = 'X' WHERE chain = 'host-b' AND seq = 2`), /append-only/);
  await t.rejects(store.query(`DELETE FROM audit WHERE chain = 'host-b'`), /append-only/);

  // An attacker with the superuser drops the trigger and edits a row: verify names it.
  await store.query('ALTER TABLE audit DISABLE TRIGGER audit_no_update');
  await store.query(`UPDATE audit SET result = 'BAD_CREDENTIALS' WHERE chain = 'host-b' AND seq = 3`);
  const bad = await verifyChains(store);
  t.notOk(bad.ok);
  t.equal(bad.problems[0]?.chain, 'host-b');
  t.equal(bad.problems[0]?.seq, 3);
  // Moving a row to another chain breaks both.
  await store.query(`UPDATE audit SET chain = 'host-b', seq = 6 WHERE chain = 'host-a' AND seq = 10`);
  const moved = await verifyChains(store);
  t.ok(moved.problems.some((p) => p.chain === 'host-a'));
  t.ok(moved.problems.some((p) => p.chain === 'host-b' && p.seq === 6));
});

t.test('key use counts from several writers add up (no lost update)', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true, poolSize: 8 });
  t.teardown(() => store.close());
  await store.query(`INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms) VALUES ('u', '\\x00', 1, '\\x00', 0, 0)`);
  const key = await store.query<{ id: number }>(
    `INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms) SELECT id, 'k', 1, '', 1, false, 32, '\\x00', 0 FROM users RETURNING id`,
  );
  const id = key.rows[0]!.id;
  const writers = ['w1', 'w2', 'w3', 'w4'];
  await Promise.all(
    writers.map(async (chain) => {
      let head = await readChainHead(store, chain);
      for (let i = 0; i < 25; i++) head = await appendChainRows(store, chain, head, [record(i)], new Map([[id, { count: 3, lastUsedMs: i }]]));
    }),
  );
  const row = await store.query<{ use_count: number; last_used_ms: number }>('SELECT use_count, last_used_ms FROM keys WHERE id = $1', [id]);
  t.equal(row.rows[0]!.use_count, 4 * 25 * 3);
  t.equal(row.rows[0]!.last_used_ms, 24);
  t.ok((await verifyChains(store)).ok);
});

t.test('the int8 parser is the pool\'s own, not a global change', async (t) => {
  const client = new pg.Client({ connectionString: process.env.VHSM_TEST_PG_URL });
  await client.connect();
  t.teardown(() => client.end());
  t.equal(typeof (await client.query('SELECT 1::bigint AS n')).rows[0].n, 'string');
});

/** A group commit on chain "host-a" of a fresh database, and the row count of each append as PostgreSQL receives it. */
async function countedGroupCommit(t: { teardown(fn: () => unknown): void }): Promise<{ store: PgStore; commits: PgGroupCommit; appends: number[] }> {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true });
  t.teardown(() => store.close());
  const appends: number[] = [];
  const counting = Object.create(store) as PgStore;
  counting.queryUnflushed = (text, params) => {
    if (typeof text !== 'string' && text.name === 'vhsm_append_chain_rows') appends.push((JSON.parse(params![4] as string) as unknown[]).length);
    return store.queryUnflushed(text, params);
  };
  return { store, commits: new PgGroupCommit(counting, 'host-a', new KeyUses(60_000), silentLogger), appends };
}

t.test('group commit: many rows with nothing in flight go as two halves, chained in order; a few go as one', async (t) => {
  const { store, commits, appends } = await countedGroupCommit(t);
  await Promise.all(Array.from({ length: 20 }, (_, i) => commits.enqueue(record(i)))); // one event-loop turn
  t.same(appends, [10, 10], '20 rows: two batches of 10');
  await Promise.all(Array.from({ length: 5 }, (_, i) => commits.enqueue(record(20 + i))));
  t.same(appends, [10, 10, 5], '5 rows: one batch');
  await commits.close();
  const rows = (await readChainRows(store, { chain: 'host-a', limit: 100 })).sort((a, b) => a.seq - b.seq);
  t.same(rows.map((r) => r.timeMs - 1_700_000_000_000), Array.from({ length: 25 }, (_, i) => i), 'the chain holds every row in the order enqueued');
  t.ok((await verifyChains(store)).ok, 'and verifies');
});

t.test('group commit: a half rewritten without a refused row leaves no later batch hashed onto its old head', async (t) => {
  const { store, commits, appends } = await countedGroupCommit(t);
  await commits.enqueue(record(0)); // the head is known from here on
  appends.length = 0;
  const refused = { userId: 999_999, ctid: 1, keyId: 'gone', keyRowId: 1 }; // no such user: its container check fails
  // Two halves of 10; the first loses its first row at commit and is hashed
  // again, so the second (hashed onto the first's old head) must be too.
  const first = Array.from({ length: 20 }, (_, i) => commits.enqueue(record(1 + i), i === 0 ? refused : undefined));
  await new Promise(setImmediate); // the halves are sent
  const more = Array.from({ length: 10 }, (_, i) => commits.enqueue(record(21 + i))); // queued behind them
  const outcomes = await Promise.allSettled([...first, ...more]);
  t.ok(outcomes[0]!.status === 'rejected' && (outcomes[0] as PromiseRejectedResult).reason instanceof CommitCheckFailed, 'the refused row fails with its check');
  t.same(outcomes.slice(1).filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason)), [], 'every other row is written');
  // The halves (10, 10); the first again without its refused row (9); the
  // second again after its conflict (10); then the 10 queued behind them.
  t.same(appends, [10, 10, 9, 10, 10], 'the queued batch waited for the half that had to be hashed again (no fork, no extra conflict)');
  await commits.close();
  const rows = (await readChainRows(store, { chain: 'host-a', limit: 100 })).sort((a, b) => a.seq - b.seq);
  t.same(rows.map((r) => r.timeMs - 1_700_000_000_000), [0, ...Array.from({ length: 29 }, (_, i) => i + 2)], 'every written row, in the order enqueued');
  t.ok((await verifyChains(store)).ok, 'and the chain verifies');
});
