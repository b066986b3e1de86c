/**
 * Group commit: the writes and audit rows of all requests finished in one
 * event-loop turn go to the WAL in a single transaction, before any of
 * their replies leaves. What a reply then waits for is the durability
 * policy:
 *
 * - 'changes' (default): a request that changed state (keys, users, login
 *   failures) is answered once its transaction is on disk (fsync); a
 *   read-only request (sign, MAC, encrypt, …) once its audit row is in the
 *   WAL: it survives kill -9 of the server at once and a power cut after the
 *   next flush, at most `WalSync.maxDelayMs` later. Its audit row is
 *   written either way; only the wait for the disk is skipped — except while
 *   a change is not yet on disk: the read may depend on it (a signature with
 *   a key whose creation a power cut would undo), so it waits too.
 * - 'all': every reply waits for the disk (what a strict audit policy asks).
 *
 * The flush runs on the libuv pool (wal-sync.ts), so the loop keeps serving
 * meanwhile and one fsync covers every commit written before it began.
 *
 * Each state change runs in its own savepoint: one that throws (e.g.
 * KEY_EXISTS) is rolled back alone, its request fails with that error, and
 * the rest of the batch commits. Changes are written against the async
 * storage seam (backend.ts) but SQLite answers them synchronously, so a
 * batch with changes finishes within one macrotask; a batch without any
 * (signatures, the hot path) never leaves the synchronous path.
 */
import { appendAuditRows } from './audit.js';
import { applyChanges, BatchingQueue, type BatchItem } from './batching-queue.js';
import { CommitCheckFailed, type CommitCheck, type Durability, type StorageTx } from './backend.js';
import type { Checkpointer } from './checkpointer.js';
import type { KeyUses } from './key-uses.js';
import { prepared } from './sql.js';
import type { Store } from './storage.js';
import type { WalSync } from './wal-sync.js';

export type { Durability } from './backend.js';

/**
 * A CommitCheck made inside the batch's transaction: why it fails, or
 * undefined when the container is still the user's and the key row the
 * session holds is still the one named keyId.
 */
function failedCheck(db: Store['db'], check: CommitCheck): CommitCheckFailed['reason'] | undefined {
  const row = prepared(
    db,
    `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM user_containers WHERE user_id = ? AND ctid = ?) THEN 'container'
                 WHEN NOT EXISTS (SELECT 1 FROM keys WHERE id = ? AND user_id = ? AND key_id = ?) THEN 'key' END AS reason`,
  ).get(check.userId, check.ctid, check.keyRowId, check.userId, check.keyId) as { reason: CommitCheckFailed['reason'] | null };
  return row.reason ?? undefined;
}

export class GroupCommit extends BatchingQueue {
  /** A batch with changes still running (its transaction is open). */
  private running: Promise<void> | undefined;
  /** Generation (WalSync.written) of the last batch that changed state. */
  private lastChange = 0;

  constructor(
    private readonly store: Store,
    private readonly tx: StorageTx,
    private readonly wal: WalSync,
    private readonly checkpointer: Checkpointer,
    uses: KeyUses,
    private readonly durability: Durability = 'changes',
  ) {
    super(uses);
  }

  /** Writes everything queued now; `allUses` also writes use counts before their interval is up (stop). */
  override flush(allUses = false): void {
    if (this.running) {
      // The previous batch's transaction is still open: this one follows it.
      void this.running.then(() => this.flush(allUses));
      return;
    }
    this.scheduled = false;
    const items = this.items;
    this.items = [];
    const failure = this.wal.failed;
    if (failure) {
      // The disk failed a flush: write nothing more (a change others could
      // read but its own client was told failed), answer everything with the error.
      for (const item of items) item.reject(failure);
      return;
    }
    const uses = this.uses.take(allUses);
    if (items.length === 0 && uses === undefined) return;

    if (!items.some((item) => item.change)) {
      let refused = new Map<BatchItem, unknown>();
      let error: unknown;
      try {
        refused = this.store.write(() => this.writeRecords(items, uses));
      } catch (caught) {
        error = caught ?? new Error('commit failed');
      }
      this.finish(items, refused, uses, error);
      return;
    }
    this.running = this.writeWithChanges(items, uses).finally(() => (this.running = undefined));
  }

  private async writeWithChanges(items: BatchItem[], uses: ReturnType<KeyUses['take']>): Promise<void> {
    let failed = new Map<BatchItem, unknown>();
    const db = this.store.db;
    let error: unknown;
    try {
      db.exec('BEGIN IMMEDIATE');
      try {
        failed = await applyChanges(items, this.tx, {
          begin: () => db.exec('SAVEPOINT change'),
          release: () => db.exec('RELEASE change'),
          rollback: () => db.exec('ROLLBACK TO change'),
        });
        const refused = this.writeRecords(
          items.filter((item) => !failed.has(item)),
          uses,
        );
        for (const [item, reason] of refused) failed.set(item, reason);
        db.exec('COMMIT');
      } catch (caught) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw caught;
      }
    } catch (caught) {
      error = caught ?? new Error('commit failed');
    }
    this.finish(items, failed, uses, error);
  }

  /**
   * Appends the items' audit rows and the use counts, inside the batch's
   * transaction. An item whose CommitCheck fails gets no row: it is returned
   * with its reason, and the request is answered with that error instead.
   */
  private writeRecords(items: readonly BatchItem[], uses: ReturnType<KeyUses['take']>): Map<BatchItem, unknown> {
    const refused = new Map<BatchItem, unknown>();
    for (const item of items) {
      const reason = item.check && failedCheck(this.store.db, item.check);
      if (reason) refused.set(item, new CommitCheckFailed(reason));
    }
    appendAuditRows(
      this.store.db,
      (refused.size === 0 ? items : items.filter((item) => !refused.has(item))).map((item) => item.record),
    );
    if (uses) {
      const bump = prepared(this.store.db, 'UPDATE keys SET use_count = use_count + ?, last_used_ms = max(last_used_ms, ?) WHERE id = ?');
      for (const [id, use] of uses) bump.run(use.count, use.lastUsedMs, id);
    }
    return refused;
  }

  /** Answers a written (or failed) batch, each reply after what it must wait for. */
  private finish(items: BatchItem[], failed: Map<BatchItem, unknown>, uses: ReturnType<KeyUses['take']>, error: unknown): void {
    if (error !== undefined) {
      if (uses) this.uses.restore(uses);
      for (const item of items) item.reject(error);
      return;
    }
    // A read-only request may have read an earlier batch's change that is not
    // on disk yet (a key created a moment ago): its reply must not reach the
    // client before the change reaches the disk. This batch's own changes were
    // applied just now, after its reads ran.
    const readsWait = this.durability === 'all' || !this.wal.isDurable(this.lastChange);
    const generation = this.wal.written();
    this.checkpointer.committed();
    if (items.some((item) => item.change && !failed.has(item))) this.lastChange = generation;
    const waiting: BatchItem[] = [];
    for (const item of items) {
      if (failed.has(item)) item.reject(failed.get(item));
      else if (item.change || readsWait) waiting.push(item);
      else item.resolve();
    }
    if (waiting.length === 0) {
      this.wal.soon();
      return;
    }
    this.wal.durable().then(
      () => {
        for (const item of waiting) item.resolve();
      },
      (error: unknown) => {
        for (const item of waiting) item.reject(error);
      },
    );
  }

  /** Writes what is queued, waits until it is on disk, stops the checkpointer and releases the WAL file. */
  override async close(): Promise<void> {
    this.stopUsesTimer();
    await this.running;
    this.flush(true);
    await this.running;
    await this.wal.close();
    await this.checkpointer.close();
  }
}
