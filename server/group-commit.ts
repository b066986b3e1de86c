/**
 * Group commit: the writes and audit rows of all requests finished in one
 * event-loop turn go to disk in a single transaction, and no reply leaves
 * before its writes and audit row are durable. One fsync (a few ms on a
 * busy disk, and better-sqlite3 blocks the loop meanwhile) then covers many
 * requests instead of one each, so a container flooding key creations does
 * not stall the loop once per key.
 *
 * Each state change runs in its own savepoint: one that throws (e.g.
 * KEY_EXISTS) is rolled back alone, its request fails with that error, and
 * the rest of the batch commits.
 */
import { appendAuditRows, type AuditRecord } from './audit.js';
import { prepared } from './sql.js';
import type { Store } from './storage.js';

interface Item {
  readonly record: AuditRecord;
  /** A state change to commit with the record; undefined for audit-only items. */
  readonly change: (() => void) | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

interface KeyUse {
  count: number;
  lastUsedMs: number;
}

export class GroupCommit {
  private items: Item[] = [];
  private uses = new Map<number, KeyUse>();
  private scheduled = false;

  constructor(private readonly store: Store) {}

  /** Queues an audit record; resolves once it is on disk. */
  enqueue(record: AuditRecord): Promise<void> {
    return this.add(record, undefined);
  }

  /**
   * Queues `change` with its audit record. Resolves once both are on disk;
   * rejects with the change's own error (then nothing of it was written and
   * the record was dropped: the caller audits the failure instead).
   */
  commit(change: () => void, record: AuditRecord): Promise<void> {
    return this.add(record, change);
  }

  /** Counts one use of a stored key (keys.id); written with the next batch. */
  noteKeyUse(keyRowId: number, nowMs: number): void {
    const use = this.uses.get(keyRowId);
    if (use) {
      use.count += 1;
      use.lastUsedMs = Math.max(use.lastUsedMs, nowMs);
    } else {
      this.uses.set(keyRowId, { count: 1, lastUsedMs: nowMs });
    }
    this.schedule();
  }

  /** Writes everything queued now (also called on stop). */
  flush(): void {
    this.scheduled = false;
    const items = this.items;
    const uses = this.uses;
    this.items = [];
    this.uses = new Map();
    if (items.length === 0 && uses.size === 0) return;

    const failed = new Map<Item, unknown>();
    try {
      this.store.write(() => {
        const records: AuditRecord[] = [];
        for (const item of items) {
          if (item.change) {
            try {
              this.store.db.transaction(item.change)(); // nested: a savepoint
            } catch (error) {
              failed.set(item, error);
              continue;
            }
          }
          records.push(item.record);
        }
        appendAuditRows(this.store.db, records);
        const bump = prepared(this.store.db, 'UPDATE keys SET use_count = use_count + ?, last_used_ms = max(last_used_ms, ?) WHERE id = ?');
        for (const [id, use] of uses) bump.run(use.count, use.lastUsedMs, id);
      });
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    for (const item of items) {
      if (failed.has(item)) item.reject(failed.get(item));
      else item.resolve();
    }
  }

  private add(record: AuditRecord, change: (() => void) | undefined): Promise<void> {
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
