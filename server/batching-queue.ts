/**
 * What both storage backends' group commits share: requests' audit records
 * (and changes) queue up as items, the first one of an event-loop turn
 * schedules a flush, key use counts wait for their interval or the next
 * batch, and each change of a batch runs in its own savepoint. How a batch
 * is written and when its replies may leave is each backend's own
 * (group-commit.ts for SQLite, pg/commits.ts for PostgreSQL).
 */
import type { AuditRecord } from './audit.js';
import type { Change, CommitCheck, CommitQueue, StorageTx } from './backend.js';
import type { KeyUses } from './key-uses.js';

export interface BatchItem {
  readonly record: AuditRecord;
  /** A state change to commit with the record; undefined for audit-only items. */
  readonly change: Change | undefined;
  /** Checked in the statement that writes the record (backends with checksAtCommit). */
  readonly check: CommitCheck | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

export abstract class BatchingQueue implements CommitQueue {
  protected items: BatchItem[] = [];
  /** A flush is due (scheduled, or waiting for a batch in flight). */
  protected scheduled = false;
  private usesTimer: NodeJS.Timeout | undefined;

  constructor(protected readonly uses: KeyUses) {}

  /** Queues an audit record; resolves once it is written as the durability policy asks. */
  enqueue(record: AuditRecord, check?: CommitCheck): Promise<void> {
    return this.add(record, undefined, check);
  }

  /**
   * Queues `change` with its audit record; rejects with the change's own
   * error (then nothing of it was written and the record was dropped: the
   * caller audits the failure instead).
   */
  commit(change: Change, record: AuditRecord): Promise<void> {
    return this.add(record, change, undefined);
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
  abstract flush(allUses?: boolean): void;

  abstract close(): Promise<void>;

  /** Stops the use-count timer (close: the last batch takes every count). */
  protected stopUsesTimer(): void {
    clearTimeout(this.usesTimer);
    this.usesTimer = undefined;
  }

  private add(record: AuditRecord, change: Change | undefined, check: CommitCheck | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.items.push({ record, change, check, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }
}

/** A transaction's savepoint statements, as each backend runs them. */
export interface Savepoints {
  begin(): unknown;
  release(): unknown;
  rollback(): unknown;
}

/**
 * Runs each item's change in its own savepoint inside an open transaction:
 * one that throws (e.g. KEY_EXISTS) is rolled back alone and recorded in the
 * returned map; the others stay.
 */
export async function applyChanges(items: readonly BatchItem[], tx: StorageTx, savepoints: Savepoints): Promise<Map<BatchItem, unknown>> {
  const failed = new Map<BatchItem, unknown>();
  for (const item of items) {
    if (!item.change) continue;
    await savepoints.begin();
    try {
      await item.change(tx);
      await savepoints.release();
    } catch (error) {
      await savepoints.rollback();
      await savepoints.release();
      failed.set(item, error);
    }
  }
  return failed;
}
