/**
 * Group commit on PostgreSQL: the audit rows (and changes) of every request
 * finished while the previous batch was in flight go to the database in one
 * batch, before any of their replies leaves.
 *
 * - A batch without changes (signatures: the hot path) is ONE statement in
 *   autocommit mode: audit rows, this server's chain head and the merged key
 *   use counts (audit.ts writeChainRows).
 * - A batch with changes is one transaction: each change in its own
 *   savepoint (one that throws is rolled back alone and its request fails
 *   with that error), then that same statement, then COMMIT.
 * - Up to two audit-only batches in flight (the next one collects and is
 *   sent while PostgreSQL answers the last: measured, the wait for the audit
 *   round trip was most of a request's time at 16 clients), the second only
 *   once it has MIN_OVERLAP_ROWS rows and the head is known; with nothing
 *   in flight, a batch of twice that many goes as two halves. Each is hashed
 *   onto the head the one before it will leave, and the head only moves
 *   from the value a batch expects, so the chain stays in order: a batch
 *   that overtakes its predecessor is a no-op, waits for it and is hashed
 *   again. A batch with changes runs alone (its transaction's savepoints
 *   decide which rows it has).
 * - Durability, as on SQLite: a batch with changes commits with
 *   synchronous_commit=on (its replies leave once PostgreSQL flushed the WAL,
 *   and reached synchronous standbys). A batch of read-only requests'
 *   audit rows under 'changes' (the default) commits with
 *   synchronous_commit=off: committed and visible before the replies, so it
 *   survives kill -9 of this server; this server holds those rows until
 *   PostgreSQL has flushed them and writes back any a crash of PostgreSQL
 *   lost (unflushed.ts), so only both crashing together loses them, as only
 *   the OS crashing does on SQLite. Under 'all' every batch waits for the flush.
 *   A later synchronous commit flushes every earlier WAL record too, so a
 *   change is never durable while an earlier read's row is not.
 * - The database unreachable: the batch's requests fail with
 *   StorageUnavailable (UNAVAILABLE to clients), their use counts are kept
 *   for the next batch, and the next batch tries again on a fresh connection.
 */
import { applyChanges, BatchingQueue, type BatchItem } from '../batching-queue.js';
import type { Durability } from '../backend.js';
import type { KeyUse, KeyUses } from '../key-uses.js';
import type { Logger } from '../log.js';
import { ChainConflict, ChecksFailed, hashChainRows, readChainHead, writeChainRows, type ChainHead, type ChainRows } from './audit.js';
import { PgTx } from './backend.js';
import type { PgStore, Queryable } from './store.js';
import { FLUSH_CHECK_MS, UnflushedBatches } from './unflushed.js';

/** Appends retried after a ChainConflict (another writer on this chain id) before giving up. */
const MAX_CONFLICT_RETRIES = 5;

/** Audit-only batches in flight at once. */
const MAX_IN_FLIGHT = 2;

/**
 * Rows a batch needs before it is sent beside one already in flight. A batch
 * costs PostgreSQL ~0.2 ms of CPU and this server about as much, plus ~10 µs
 * a row (measured): when requests finish one by one (RSA from the thread
 * pool), sending each at once spent the CPU the signatures need on batches
 * of 3 (RSA-2048 × 16 clients: 2,230/s; with this rule 3,100/s, 4 rows a
 * batch). A small batch waits for the one in flight instead.
 */
const MIN_OVERLAP_ROWS = 8;

export class PgGroupCommit extends BatchingQueue {
  /** Batches in flight, oldest first. */
  private inFlight: Promise<void>[] = [];
  /** A batch with changes is in flight (nothing runs beside it). */
  private exclusive = false;
  /** This chain's head after the last batch sent; undefined = read it again (start, or after a failure). */
  private head: ChainHead | undefined;
  /** Batches sent so far: the newest one's number. */
  private sent = 0;
  /** Acknowledged rows PostgreSQL has not flushed yet ('changes'): written again if it loses them. */
  private readonly unflushed: UnflushedBatches;
  private flushCheck: NodeJS.Timeout | undefined;
  /** The flush check under way, if any (close waits for it). */
  private checking: Promise<void> | undefined;
  /** The last flush check failed: logged once until one succeeds. */
  private checkFailing = false;
  /** The head must be read again and lost rows written back even without new rows. */
  private repairDue = false;
  private closed = false;

  constructor(
    private readonly store: PgStore,
    private readonly chain: string,
    uses: KeyUses,
    private readonly logger: Logger,
    private readonly durability: Durability = 'changes',
  ) {
    super(uses);
    this.unflushed = new UnflushedBatches(chain, logger);
  }

  override flush(allUses = false): void {
    this.scheduled = false;
    const withChanges = this.items.some((item) => item.change);
    const busy = this.inFlight.length > 0;
    // A batch goes beside one in flight only if it can be hashed onto the
    // head that one leaves: not while the head is being read again.
    const overlapOk = !withChanges && this.items.length >= MIN_OVERLAP_ROWS && this.head !== undefined;
    if (this.exclusive || this.inFlight.length >= MAX_IN_FLIGHT || (busy && !overlapOk)) {
      // Started again when a batch in flight ends; use counts are taken then.
      this.scheduled = true;
      return;
    }
    // Many rows and nothing in flight: half now, half beside it. Clients
    // answered by one batch come back together; with one batch for all of
    // them this thread sat idle while PostgreSQL wrote it (16 clients: a
    // fifth of the time, measured), with two the first half's clients work
    // while the second half is written, and the halves stay apart.
    const take = !busy && !withChanges && this.items.length >= 2 * MIN_OVERLAP_ROWS ? Math.ceil(this.items.length / 2) : this.items.length;
    const items = this.items.slice(0, take);
    this.items = this.items.slice(take);
    const uses = this.uses.take(allUses);
    if (items.length === 0 && uses === undefined && !this.repairDue) return;
    this.repairDue = false;
    this.exclusive = withChanges;
    const before = this.inFlight[this.inFlight.length - 1];
    const batch: Promise<void> = this.run(++this.sent, items, uses, withChanges, before).finally(() => {
      this.inFlight.splice(this.inFlight.indexOf(batch), 1);
      if (withChanges) this.exclusive = false;
      if (this.scheduled || this.items.length > 0) this.flush();
    });
    this.inFlight.push(batch);
    if (this.items.length > 0) this.flush(); // the other half
  }

  override async close(): Promise<void> {
    this.closed = true;
    this.stopUsesTimer();
    clearTimeout(this.flushCheck);
    this.flushCheck = undefined;
    await this.checking; // a check that found rows lost leaves the repair to the flush below
    while (this.inFlight.length > 0) await Promise.allSettled(this.inFlight);
    this.flush(true);
    while (this.inFlight.length > 0) await Promise.allSettled(this.inFlight);
    if (this.unflushed.size > 0) await this.flushHeld();
  }

  /**
   * At close: one synchronous commit with a transaction id flushes the WAL up
   * to its commit record, so every row held before it, and nothing is left
   * that a PostgreSQL crash after this server stopped could lose.
   */
  private async flushHeld(): Promise<void> {
    try {
      await this.store.query('SELECT pg_current_xact_id()');
      this.unflushed.clear();
    } catch (error) {
      this.logger.log('warn', 'audit rows committed but not yet flushed by PostgreSQL at shutdown', { rows: this.unflushed.size, error: (error as Error).message });
    }
  }

  /** While rows wait for PostgreSQL's flush: check it every FLUSH_CHECK_MS; rows found lost are written again. */
  private watchFlush(): void {
    if (this.closed || this.flushCheck || this.unflushed.size === 0) return;
    this.flushCheck = setTimeout(() => {
      this.checking = this.unflushed.checkFlushed(this.store).then(
        (lost) => {
          this.flushCheck = undefined;
          this.checking = undefined;
          this.checkFailing = false;
          if (lost) {
            this.head = undefined;
            this.repairDue = true;
            if (this.closed) return; // close() flushes, the repair with it
            this.flush();
          }
          this.watchFlush();
        },
        (error: unknown) => {
          this.flushCheck = undefined;
          this.checking = undefined;
          if (!this.checkFailing) this.logger.log('warn', 'cannot read PostgreSQL\'s WAL flush position; retrying', { error: (error as Error).message });
          this.checkFailing = true;
          this.watchFlush(); // the next batch or check tries again
        },
      );
    }, FLUSH_CHECK_MS);
    this.flushCheck.unref();
  }

  /** `id`: this batch's number; `before`: the batch in flight ahead of this one (its rows precede ours in the chain). */
  private async run(id: number, items: BatchItem[], uses: Map<number, KeyUse> | undefined, withChanges: boolean, before: Promise<void> | undefined): Promise<void> {
    let failed = new Map<BatchItem, unknown>();
    try {
      if (withChanges) {
        await this.store.tx(async (client) => {
          failed = await applyChanges(items, new PgTx(client), {
            begin: () => client.query('SAVEPOINT change'),
            release: () => client.query('RELEASE SAVEPOINT change'),
            rollback: () => client.query('ROLLBACK TO SAVEPOINT change'),
          });
          await this.append(id, client, client, items, failed, uses, before);
        });
        this.unflushed.clear(); // a synchronous commit flushed every earlier row
      } else if (this.durability === 'changes') {
        const written = await this.append(id, { query: (text, params) => this.store.queryUnflushed(text, params) }, this.store, items, failed, uses, before);
        if (written.rows.encoded.length > 0) {
          this.unflushed.add(written.base, written.rows, uses);
          this.watchFlush();
        }
      } else {
        await this.append(id, this.store, this.store, items, failed, uses, before);
        this.unflushed.clear();
      }
    } catch (error) {
      this.head = undefined; // the batch may or may not have committed: read the head again
      if (uses) this.uses.restore(uses);
      this.logger.log('warn', 'audit batch failed', { rows: items.length, error: (error as Error).message });
      for (const item of items) item.reject(error);
      return;
    }
    for (const item of items) {
      if (failed.has(item)) item.reject(failed.get(item));
      else item.resolve();
    }
  }

  /**
   * Appends the items not in `failed` to this server's chain after the head
   * the batch before it leaves. On a conflict (that batch not committed yet,
   * failed, or another writer on this chain id) it waits for the batch before
   * it, reads the head, writes back (on `durable`, which commits
   * synchronously) rows this server acknowledged that the database lost, and
   * hashes its rows again. Items whose CommitCheck fails are added to
   * `failed` and the rest written without them. Returns what it wrote.
   */
  private async append(
    id: number,
    db: Queryable,
    durable: Queryable,
    items: readonly BatchItem[],
    failed: Map<BatchItem, unknown>,
    uses: Map<number, KeyUse> | undefined,
    before: Promise<void> | undefined,
  ): Promise<{ base: ChainHead; rows: ChainRows }> {
    let pending = items.filter((item) => !failed.has(item));
    let base = this.head; // the head our rows go after
    for (let conflicts = 0; ; ) {
      if (base === undefined) {
        await before?.catch(() => undefined);
        before = undefined;
        base = await this.unflushed.replay(durable, await readChainHead(db, this.chain));
      }
      const rows = hashChainRows(base, this.chain, pending.map((item) => item.record));
      // The next batch starts here, unless one was sent after this batch
      // already: it was hashed onto rows this one no longer writes as they
      // were, so the batch after it must wait for it and read the head.
      this.head = id === this.sent ? rows.head : undefined;
      if (pending.length === 0 && !uses) return { base, rows }; // a repair only
      try {
        await writeChainRows(db, this.chain, base, rows, uses, pending.map((item) => item.check));
        return { base, rows };
      } catch (error) {
        if (error instanceof ChecksFailed) {
          // Nothing written, the head is still `base`: write the others.
          for (const [index, reason] of error.failed) failed.set(pending[index]!, reason);
          pending = pending.filter((item) => !failed.has(item));
          continue;
        }
        this.head = undefined; // any batch sent after this one was hashed onto it too
        base = undefined;
        if (!(error instanceof ChainConflict) || ++conflicts > MAX_CONFLICT_RETRIES) throw error;
      }
    }
  }
}
