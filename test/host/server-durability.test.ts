/**
 * Durability policy and the machinery behind it:
 * - WalSync: one flush covers every commit written before it began; a
 *   commit written during a flush waits for the next; a failed flush fails
 *   its waiters and everything after it; close waits for the flush.
 * - GroupCommit: under 'changes' a read-only request's audit row is written
 *   (in the WAL) before it resolves, without waiting for the flush; a state
 *   change waits for the flush; under 'all' everything waits.
 * - Key use counters: exact in key info at once, in the table after the
 *   interval or at stop.
 * - Checkpointer: the server's connection never checkpoints on its own; the
 *   worker copies the WAL into the database file.
 * The flush is held by an injected sync function where a test needs to
 * control its timing; everywhere else (every other test and the server)
 * it is the real fdatasync.
 * On PostgreSQL (VHSM_TEST_BACKEND=postgres) the server-level tests run;
 * the SQLite machinery's are skipped (PostgreSQL's own durability is
 * tested in pg-multi-server: kill -9 of a server and of a backend).
 */
import { SqliteTx } from '../../server/sqlite-backend.js';
import t, { type Test } from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from '../../server/audit.js';
import { Checkpointer } from '../../server/checkpointer.js';
import { GroupCommit, type Durability } from '../../server/group-commit.js';
import { KeyUses } from '../../server/key-uses.js';
import { silentLogger } from '../../server/log.js';
import { VhsmServer } from '../../server/server.js';
import { Store } from '../../server/storage.js';
import { WalSync, type SyncFunction } from '../../server/wal-sync.js';
import { ALICE, createDatabase, freshStoreLocation, startFixture, tempDir, testBackend } from './helpers/fixture.js';
import { selectAll } from './helpers/raw.js';

/** A fresh options object per test: tap writes into the one it is given. */
const sqliteOnly = (): { skip?: string } => (testBackend() === 'postgres' ? { skip: 'SQLite machinery (PostgreSQL: pg-multi-server)' } : {});

/** A sync function whose flushes complete only when the test says so. */
function heldSync(): { sync: SyncFunction; calls: number; complete(error?: Error): void } {
  const pending: ((error: Error | null) => void)[] = [];
  const held = {
    calls: 0,
    sync: ((_fd, done) => {
      held.calls += 1;
      pending.push(done);
    }) as SyncFunction,
    complete(error?: Error) {
      const done = pending.shift();
      if (!done) throw new Error('no flush in progress');
      done(error ?? null);
    },
  };
  return held;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function record(op: string): AuditRecord {
  return { timeMs: 1, ctid: 101, netnsCookie: 7n, pid: 42, uid: 0, gid: 0, user: 'alice', op, keyId: '', result: 'OK' };
}

function openStore(t: Test): Store {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'durability.db');
  const store = Store.open(path, { create: true });
  t.teardown(() => {
    store.close();
    cleanup();
  });
  return store;
}

function watch(promise: Promise<void>): { settled: boolean; error: unknown } {
  const state = { settled: false, error: undefined as unknown };
  promise.then(
    () => (state.settled = true),
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

t.test('WalSync: coalesced flushes, generations, failure, close', sqliteOnly(), async (t) => {
  const store = openStore(t);
  const held = heldSync();
  const wal = WalSync.open(store.path, { maxDelayMs: 60_000, sync: held.sync });

  t.equal(held.calls, 0, 'nothing written, nothing flushed');
  await wal.durable();
  t.equal(held.calls, 0, 'durable() with nothing written resolves without a flush');

  wal.written();
  const first = watch(wal.durable());
  const second = watch(wal.durable());
  t.equal(held.calls, 1, 'two waiters, one flush');
  wal.written(); // written while the flush runs: not covered by it
  const third = watch(wal.durable());
  t.equal(held.calls, 1, 'no second flush while one is in progress');
  held.complete();
  await tick();
  t.ok(first.settled && second.settled, 'the flush releases the waiters it covers');
  t.notOk(third.settled, 'a commit written during the flush still waits');
  t.equal(held.calls, 1 + 1, 'and gets a flush of its own at once');
  held.complete();
  await tick();
  t.ok(third.settled, 'released by the second flush');

  wal.written();
  const failing = watch(wal.durable());
  held.complete(new Error('EIO'));
  await tick();
  t.match(String(failing.error), /flushing the WAL failed: EIO/, 'a failed flush fails its waiters');
  wal.written();
  await t.rejects(wal.durable(), /flushing the WAL failed/, 'and every later wait: nothing can be called durable after it');
  await wal.close();
});

t.test('WalSync: soon() flushes within the delay with nobody waiting; close waits for a flush', sqliteOnly(), async (t) => {
  const store = openStore(t);
  const held = heldSync();
  const wal = WalSync.open(store.path, { maxDelayMs: 20, sync: held.sync });
  wal.written();
  wal.soon();
  t.equal(held.calls, 0, 'not at once');
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(held.calls, 1, 'within the delay');
  const closing = watch(wal.close());
  await tick();
  t.notOk(closing.settled, 'close waits for the flush in progress');
  held.complete();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(closing.settled, 'and then closes');
});

t.test('WalSync: the real fdatasync', sqliteOnly(), async (t) => {
  const store = openStore(t);
  const wal = WalSync.open(store.path, { maxDelayMs: 5 });
  store.write(() => store.db.prepare('UPDATE audit_head SET seq = seq WHERE id = 1').run());
  wal.written();
  await wal.durable();
  t.pass('durable() resolves after a real flush');
  await wal.close();
});

async function groupCommitCase(t: Test, durability: Durability) {
  const store = openStore(t);
  const held = heldSync();
  const wal = WalSync.open(store.path, { maxDelayMs: 60_000, sync: held.sync });
  const commits = new GroupCommit(store, new SqliteTx(store.db), wal, new Checkpointer(store, silentLogger), new KeyUses(1000), durability);
  const rowsOf = (op: string): number => (store.db.prepare('SELECT count(*) AS n FROM audit WHERE op = ?').get(op) as { n: number }).n;

  const readOnly = watch(commits.enqueue(record('sign')));
  const change = watch(commits.commit(() => void store.db.prepare('UPDATE audit_head SET id = id WHERE id = 1').run(), record('generate-key')));
  await tick();
  await tick();
  t.equal(rowsOf('sign'), 1, 'the read-only request’s audit row is in the DB');
  t.equal(rowsOf('generate-key'), 1, 'so is the change’s');
  t.equal(held.calls, 1, 'one flush for the batch');
  return { store, held, commits, readOnly, change };
}

t.test("GroupCommit 'changes': read-only replies do not wait for the flush, changes do", sqliteOnly(), async (t) => {
  const { held, commits, readOnly, change } = await groupCommitCase(t, 'changes');
  t.ok(readOnly.settled, 'read-only: resolved once written');
  t.notOk(change.settled, 'state change: still waiting for the disk');
  const readAfterChange = watch(commits.enqueue(record('sign')));
  await tick();
  await tick();
  t.notOk(readAfterChange.settled, 'a read after a change that is not on disk yet waits too (it may depend on it)');
  held.complete();
  await tick();
  t.ok(change.settled, 'state change: resolved by the flush');
  held.complete(); // the read's batch was written after the first flush began
  await tick();
  t.ok(readAfterChange.settled, 'and the read with the next flush');
  const readLater = watch(commits.enqueue(record('sign')));
  await tick();
  await tick();
  t.ok(readLater.settled, 'once every change is on disk, reads are answered at the WAL write again');
  const closing = commits.close();
  await tick();
  held.complete();
  await closing;
});

t.test('GroupCommit: after a failed flush nothing more is written', sqliteOnly(), async (t) => {
  const { store, held, commits, change } = await groupCommitCase(t, 'changes');
  held.complete(new Error('EIO'));
  await tick();
  t.match(String(change.error), /flushing the WAL failed: EIO/, 'the change waiting for the flush fails');
  const rows = (): number => (store.db.prepare('SELECT count(*) AS n FROM audit').get() as { n: number }).n;
  const before = rows();
  const later = watch(commits.enqueue(record('sign')));
  await tick();
  await tick();
  t.match(String(later.error), /flushing the WAL failed/, 'a later request fails with the same error');
  t.equal(rows(), before, 'and writes nothing');
  await commits.close();
});

t.test("GroupCommit 'all': every reply waits for the flush", sqliteOnly(), async (t) => {
  const { held, commits, readOnly, change } = await groupCommitCase(t, 'all');
  t.notOk(readOnly.settled, 'read-only: waiting for the disk');
  t.notOk(change.settled, 'state change: waiting for the disk');
  held.complete();
  await tick();
  t.ok(readOnly.settled && change.settled, 'both resolved by the flush');
  await commits.close();
});

t.test('Checkpointer: the worker copies the WAL into the database file', sqliteOnly(), async (t) => {
  const store = openStore(t);
  const checkpointer = new Checkpointer(store, silentLogger, { everyCommits: 50, idleMs: 50, maxWalFrames: 100_000 });
  t.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 0, 'the connection no longer checkpoints by itself');
  const sizeBefore = statSync(store.path).size;
  const insert = store.db.prepare('INSERT INTO audit (time_ms, ctid, netns_cookie, pid, uid, gid, user, op, key_id, result, hash) VALUES (?, 1, ?, 1, 0, 0, ?, ?, ?, ?, ?)');
  // Triggers refuse nothing here: inserts are allowed, only UPDATE/DELETE are refused.
  for (let i = 0; i < 120; i++) {
    store.write(() => insert.run(i, '7', 'u'.repeat(200), 'op', 'k'.repeat(64), 'OK', Buffer.alloc(32)));
    checkpointer.committed();
  }
  const deadline = Date.now() + 20_000;
  while (checkpointer.completed === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  t.ok(checkpointer.completed >= 1, `${checkpointer.completed} checkpoint(s) completed in the worker`);
  t.ok(statSync(store.path).size > sizeBefore, 'the database file grew: pages were copied out of the WAL');
  await checkpointer.close();
  await checkpointer.close();
  t.pass('close is idempotent and the worker exits (the test would hang otherwise)');
});

t.test('Checkpointer: the WAL stays bounded under steady load', sqliteOnly(), async (t) => {
  const store = openStore(t);
  const checkpointer = new Checkpointer(store, silentLogger, { everyCommits: 16, idleMs: 50, maxWalFrames: 64 });
  const insert = store.db.prepare('INSERT INTO audit (time_ms, ctid, netns_cookie, pid, uid, gid, user, op, key_id, result, hash) VALUES (?, 1, ?, 1, 0, 0, ?, ?, ?, ?, ?)');
  // One commit per loop turn with a little work between, so the worker's
  // checkpoints always overlap commits: SQLite alone would never restart the WAL.
  // Runs until the WAL has been restarted twice (the worker is a thread: on a
  // busy machine its first cycle can take a while). The file keeps its
  // high-water size; what must hold is that after a restart commits reuse it
  // instead of growing it further.
  const walSize = (): number => statSync(`${store.path}-wal`).size;
  const deadline = performance.now() + 30_000;
  let commits = 0;
  let atFirstRestart = -1;
  let peak = 0;
  while (checkpointer.caughtUp < 2 && performance.now() < deadline) {
    store.write(() => insert.run(commits, '7', 'u'.repeat(200), 'op', 'k'.repeat(64), 'OK', Buffer.alloc(32)));
    checkpointer.committed();
    commits += 1;
    const busyUntil = performance.now() + 0.05;
    while (performance.now() < busyUntil);
    await tick();
    if (checkpointer.caughtUp >= 1 && atFirstRestart < 0) atFirstRestart = walSize();
    if (atFirstRestart >= 0 && commits % 50 === 0) peak = Math.max(peak, walSize());
  }
  t.ok(checkpointer.caughtUp >= 2, `the server's connection finished ${checkpointer.caughtUp} WAL cycles in ${commits} commits`);
  const grown = Math.max(0, peak - atFirstRestart);
  t.ok(grown < 2 * 1024 * 1024, `after the first restart the WAL grew by ${(grown / 1024).toFixed(0)} KiB (at ${(atFirstRestart / 1024).toFixed(0)} KiB then; without restarts it grows ~8 KiB a commit)`);
  await checkpointer.close();
});

t.test('server: durability option is checked; default replies for both kinds of request', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const { location: dbPath, drop } = await freshStoreLocation(dir);
  t.teardown(drop);
  await createDatabase(dbPath, [ALICE]);
  await t.rejects(
    VhsmServer.open({ storagePath: dbPath, durability: 'sometimes' as Durability }),
    { name: 'RangeError', message: /durability must be 'changes' or 'all'/ },
    'an unknown durability is refused',
  );
  for (const durability of ['changes', 'all'] as const) {
    const fixture = await startFixture({ users: [ALICE], durability });
    const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
    const key = await session.generateKey({ type: 'ed25519' });
    t.ok((await session.sign(key.keyId, new Uint8Array([1]))).length === 64, `${durability}: a change and a read-only request are answered`);
    await fixture.close();
  }
});

t.test('key use counters: exact in key info at once, written to the table at stop', async (t) => {
  const fixture = await startFixture({ users: [ALICE] });
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ed25519', keyId: 'counted' });
  for (let i = 0; i < 3; i++) await session.sign(key.keyId, new Uint8Array([i]));
  t.equal((await session.keyInfo(key.keyId)).useCount, 3, 'key info counts the three signatures');
  t.equal((await session.listKeys()).find((k) => k.keyId === key.keyId)?.useCount, 3, 'so does the listing');
  const stored = async (): Promise<number> => Number((await selectAll(fixture.dbPath, "SELECT use_count AS n FROM keys WHERE key_id = 'counted'"))[0]!.n);
  t.equal(await stored(), 0, 'not written yet (at most once a second)');
  await fixture.server.stop();
  t.equal(await stored(), 3, 'written at stop');
  await fixture.restart();
  const again = await (await fixture.client()).login(ALICE.name, ALICE.password);
  await again.sign(key.keyId, new Uint8Array([9]));
  t.equal((await again.keyInfo(key.keyId)).useCount, 4, 'the stored count and the pending one add up after a restart');
});

t.test('KeyUses: interval, force, restore', sqliteOnly(), async (t) => {
  const uses = new KeyUses(30);
  t.equal(uses.take(true), undefined, 'nothing counted, nothing to take');
  uses.note(1, 100);
  uses.note(1, 50);
  uses.note(2, 70);
  t.equal(uses.take(false), undefined, 'before the interval: kept');
  t.same(uses.pendingFor(1), { count: 2, lastUsedMs: 100 }, 'counts and the latest use');
  await new Promise((resolve) => setTimeout(resolve, 40));
  const taken = uses.take(false)!;
  t.same([...taken.keys()], [1, 2], 'after the interval: taken');
  t.equal(uses.size, 0, 'and forgotten');
  uses.note(1, 200);
  uses.restore(taken);
  t.same(uses.pendingFor(1), { count: 3, lastUsedMs: 200 }, 'a failed write gives its counts back');
});
