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
import { appendAuditRows, type AuditRecord } from './audit.js';
import type { Change, CommitQueue, Durability, StorageTx } from './backend.js';
import type { Checkpointer } from './checkpointer.js';
import type { KeyUses } from './key-uses.js';
import { prepared } from './sql.js';
import type { Store } from './storage.js';
import type { WalSync } from './wal-sync.js';

export type { Durability } from './backend.js';

interface Item {
  readonly record: AuditRecord;
  /** A state change to commit with the record; undefined for audit-only items. */
  readonly change: Change | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

export class GroupCommit implements CommitQueue {
  private items: Item[] = [];
  private scheduled = false;
  /** A batch with changes still running (its transaction is open). */
  private running: Promise<void> | undefined;
  /** Generation (WalSync.written) of the last batch that changed state. */
  private lastChange = 0;
  private usesTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly tx: StorageTx,
    private readonly wal: WalSync,
    private readonly checkpointer: Checkpointer,
    private readonly uses: KeyUses,
    private readonly durability: Durability = 'changes',
  ) {}

  /** Queues an audit record; resolves once it is written (on disk too under 'all'). */
  enqueue(record: AuditRecord): Promise<void> {
    return this.add(record, undefined);
  }

  /**
   * Queues `change` with its audit record. Resolves once both are on disk;
   * rejects with the change's own error (then nothing of it was written and
   * the record was dropped: the caller audits the failure instead).
   */
  commit(change: Change, record: AuditRecord): Promise<void> {
    return this.add(record, change);
  }

  /** Counts one use of a stored key (keys.id); written with a batch once KeyUses' interval is up. */
  noteKeyUse(keyRowId: number, nowMs: number): void {
    this.uses.note(keyRowId, nowMs);
    if (this.usesTimer) return;
    // Written with the next batch when requests keep coming, by this timer when they stop.
    this.usesTimer = setTimeout(() => {
      this.usesTimer = undefined;
      this.flush(true);
    }, this.uses.intervalMs);
    this.usesTimer.unref();
  }

  /** Writes everything queued now; `allUses` also writes use counts before their interval is up (stop). */
  flush(allUses = false): void {
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
      let error: unknown;
      try {
        this.store.write(() => this.writeRecords(items, uses));
      } catch (caught) {
        error = caught ?? new Error('commit failed');
      }
      this.finish(items, new Map(), uses, error);
      return;
    }
    this.running = this.writeWithChanges(items, uses).finally(() => (this.running = undefined));
  }

  private async writeWithChanges(items: Item[], uses: ReturnType<KeyUses['take']>): Promise<void> {
    const failed = new Map<Item, unknown>();
    const db = this.store.db;
    let error: unknown;
    try {
      db.exec('BEGIN IMMEDIATE');
      try {
        for (const item of items) {
          if (!item.change) continue;
          db.exec('SAVEPOINT change');
          try {
            await item.change(this.tx);
            db.exec('RELEASE change');
          } catch (caught) {
            db.exec('ROLLBACK TO change');
            db.exec('RELEASE change');
            failed.set(item, caught);
          }
        }
        this.writeRecords(
          items.filter((item) => !failed.has(item)),
          uses,
        );
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

  private writeRecords(items: readonly Item[], uses: ReturnType<KeyUses['take']>): void {
    appendAuditRows(
      this.store.db,
      items.map((item) => item.record),
    );
    if (uses) {
      const bump = prepared(this.store.db, 'UPDATE keys SET use_count = use_count + ?, last_used_ms = max(last_used_ms, ?) WHERE id = ?');
      for (const [id, use] of uses) bump.run(use.count, use.lastUsedMs, id);
    }
  }

  /** Answers a written (or failed) batch, each reply after what it must wait for. */
  private finish(items: Item[], failed: Map<Item, unknown>, uses: ReturnType<KeyUses['take']>, error: unknown): void {
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
    const waiting: Item[] = [];
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
  async close(): Promise<void> {
    clearTimeout(this.usesTimer);
    this.usesTimer = undefined;
    await this.running;
    this.flush(true);
    await this.running;
    await this.wal.close();
    await this.checkpointer.close();
  }

  private add(record: AuditRecord, change: Change | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.items.push({ record, change, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }
}
