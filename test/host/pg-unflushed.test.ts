/**
 * Audit rows acknowledged before PostgreSQL flushed them (server/pg/unflushed.ts),
 * on a real database: a flush check drops them only once the WAL flush
 * position has passed them; rows the database lost are reported and
 * written back byte for byte (the chain verifies, use counts merged once);
 * a head that does not match what the server holds is never papered over.
 * The crash itself (kill -9 of a backend) is in pg-multi-server.test.ts.
 */
import t, { type Test } from 'tap';
import type { AuditRecord } from '../../server/audit.js';
import type { Logger } from '../../server/log.js';
import { PgStore } from '../../server/pg/store.js';
import { hashChainRows, readChainHead, verifyChains, writeChainRows, type ChainHead } from '../../server/pg/audit.js';
import { UnflushedBatches } from '../../server/pg/unflushed.js';
import { freshPgDatabase } from './helpers/pg.js';

function record(i: number): AuditRecord {
  return { timeMs: 1_700_000_000_000 + i, ctid: 101, netnsCookie: 101007n, pid: 4242, procStart: 99n, uid: 0, gid: 0, user: 'alice', op: 'sign', keyId: 'k', result: 'OK' };
}

function recordingLogger(): Logger & { messages: string[] } {
  const messages: string[] = [];
  return { messages, log: (level, message) => void messages.push(`${level}: ${message}`) };
}

async function openStore(t: Test): Promise<{ store: PgStore; keyRow: number }> {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const store = await PgStore.open(db.url, { create: true });
  t.teardown(() => store.close());
  const userId = (await store.query<{ id: number }>("INSERT INTO users (name, kdf_salt, kdf_iterations, wrapped_auth_key, created_ms, password_changed_ms) VALUES ('alice', '\\x00', 1, '\\x00', 0, 0) RETURNING id")).rows[0]!.id;
  const keyRow = (await store.query<{ id: number }>("INSERT INTO keys (user_id, key_id, key_type, label, usages, extractable, length_bytes, wrapped, created_ms) VALUES ($1, 'k', 1, '', 1, false, 32, '\\x00', 0) RETURNING id", [userId])).rows[0]!.id;
  return { store, keyRow };
}

/** Hashes `count` rows onto `head`; writes them only if `write`. Returns the batch's base and rows. */
async function batch(store: PgStore, head: ChainHead, from: number, count: number, write: boolean) {
  const rows = hashChainRows(head, 'c', Array.from({ length: count }, (_, i) => record(from + i)));
  if (write) await writeChainRows({ query: (text, params) => store.queryUnflushed(text, params) }, 'c', head, rows);
  return { base: head, rows };
}

t.test('a flush check drops batches only once the flush position has passed them', async (t) => {
  const { store } = await openStore(t);
  const held = new UnflushedBatches('c', recordingLogger());
  const first = await batch(store, await readChainHead(store, 'c'), 1, 3, true);
  held.add(first.base, first.rows, undefined);
  t.equal(held.size, 3);
  t.equal(await held.checkFlushed(store), false, 'nothing lost');
  t.equal(held.size, 3, 'the first check only marks: it cannot know the flush position it needs');
  await store.query('CREATE TABLE flush_me (x int)'); // a synchronous commit: the WAL is flushed past every earlier row
  const second = await batch(store, first.rows.head, 4, 2, true);
  held.add(second.base, second.rows, undefined);
  t.equal(await held.checkFlushed(store), false);
  t.equal(held.size, 2, 'the marked batch is dropped, the one acknowledged after the last check is kept');
});

t.test('rows the database lost are found, written back byte for byte, and the chain verifies', async (t) => {
  const { store, keyRow } = await openStore(t);
  const logger = recordingLogger();
  const held = new UnflushedBatches('c', logger);
  const kept = await batch(store, await readChainHead(store, 'c'), 1, 2, true);
  held.add(kept.base, kept.rows, new Map([[keyRow, { count: 2, lastUsedMs: 10 }]]));
  // Two batches acknowledged, then lost with the WAL that held them: never written here.
  const lostA = await batch(store, kept.rows.head, 3, 3, false);
  held.add(lostA.base, lostA.rows, new Map([[keyRow, { count: 3, lastUsedMs: 20 }]]));
  const lostB = await batch(store, lostA.rows.head, 6, 1, false);
  held.add(lostB.base, lostB.rows, new Map([[keyRow, { count: 1, lastUsedMs: 30 }]]));
  t.equal(await held.checkFlushed(store), false, 'the first check only marks');
  t.equal(await held.checkFlushed(store), true, 'the second sees the head behind what was acknowledged');
  t.equal(held.size, 6, 'everything is still held');

  const head = await held.replay(store, await readChainHead(store, 'c'));
  t.same(head, lostB.rows.head, 'the head after the last acknowledged row');
  t.same(await readChainHead(store, 'c'), lostB.rows.head, 'and in the database');
  const report = await verifyChains(store);
  t.ok(report.ok, 'the chain verifies');
  t.equal(report.rows, 6, 'with every acknowledged row');
  const use = (await store.query<{ use_count: string; last_used_ms: string }>('SELECT use_count, last_used_ms FROM keys WHERE id = $1', [keyRow])).rows[0]!;
  t.same([Number(use.use_count), Number(use.last_used_ms)], [4, 30], 'the lost batches\' use counts are merged once (the kept batch\'s were not written here)');
  t.match(logger.messages, [/warn: audit rows lost by PostgreSQL written again/]);

  t.same(await held.replay(store, await readChainHead(store, 'c')), lostB.rows.head, 'a second replay finds nothing missing');
  t.equal((await verifyChains(store)).rows, 6, 'and writes nothing twice');
});

t.test('a head that is not one this server left is reported, never written over', async (t) => {
  const { store } = await openStore(t);
  const logger = recordingLogger();
  const held = new UnflushedBatches('c', logger);
  const written = await batch(store, await readChainHead(store, 'c'), 1, 2, true);
  const other = hashChainRows(written.rows.head, 'c', [record(99)]);
  await writeChainRows(store, 'c', written.rows.head, other); // someone else extended this chain
  const mine = await batch(store, written.rows.head, 3, 2, false);
  held.add(mine.base, mine.rows, undefined);
  const head = await held.replay(store, await readChainHead(store, 'c'));
  t.same(head, other.head, 'the database\'s head is kept');
  t.equal((await verifyChains(store)).rows, 3, 'nothing written');
  t.equal(held.size, 0, 'and nothing held any more');
  t.match(logger.messages, [/error: acknowledged audit rows are missing from the database and cannot be written again/]);
});

t.test('batches held out of order (replies of two batches in flight) are written back in chain order', async (t) => {
  const { store } = await openStore(t);
  const held = new UnflushedBatches('c', recordingLogger());
  const first = await batch(store, await readChainHead(store, 'c'), 1, 2, false);
  const second = await batch(store, first.rows.head, 3, 2, false);
  held.add(second.base, second.rows, undefined); // the second batch's reply was handled first
  held.add(first.base, first.rows, undefined);
  const head = await held.replay(store, await readChainHead(store, 'c'));
  t.same(head, second.rows.head, 'both batches written');
  const report = await verifyChains(store);
  t.ok(report.ok, 'the chain verifies');
  t.equal(report.rows, 4, 'with all four rows');
});

t.test('rows after a gap this server cannot fill are reported, not written across it', async (t) => {
  const { store } = await openStore(t);
  const logger = recordingLogger();
  const held = new UnflushedBatches('c', logger);
  const first = await batch(store, await readChainHead(store, 'c'), 1, 2, false);
  // Committed but never acknowledged (its reply was lost), so not held; lost too.
  const unacknowledged = await batch(store, first.rows.head, 3, 1, false);
  const third = await batch(store, unacknowledged.rows.head, 4, 2, false);
  held.add(first.base, first.rows, undefined);
  held.add(third.base, third.rows, undefined);
  const head = await held.replay(store, await readChainHead(store, 'c'));
  t.same(head, first.rows.head, 'the batch before the gap is written back');
  const report = await verifyChains(store);
  t.ok(report.ok, 'the chain verifies: nothing written across the gap');
  t.equal(report.rows, 2);
  t.match(logger.messages, [/error: acknowledged audit rows are missing from the database and cannot be written again/, /warn: audit rows lost by PostgreSQL written again/]);
  t.equal(held.size, 2, 'the rows after the gap are no longer held (they can never be chained on)');
  t.same(await held.replay(store, await readChainHead(store, 'c')), first.rows.head, 'a second replay writes nothing');
  t.equal((await verifyChains(store)).rows, 2);
});

t.test('rows hashed onto another head are refused before they reach the database', async (t) => {
  const { store } = await openStore(t);
  const start = await readChainHead(store, 'c');
  const first = await batch(store, start, 1, 2, true);
  const stray = hashChainRows({ seq: first.rows.head.seq + 1, hash: first.rows.head.hash }, 'c', [record(9)]);
  await t.rejects(writeChainRows(store, 'c', first.rows.head, stray), /do not follow the head/);
  t.equal((await verifyChains(store)).rows, 2, 'nothing written');
});
