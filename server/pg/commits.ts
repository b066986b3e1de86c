/**
 * Group commit on PostgreSQL: the audit rows (and changes) of every request
 * finished while the previous batch was in flight go to the database in one
 * batch, before any of their replies leaves.
 *
 * - A batch without changes (signatures: the hot path) is ONE statement in
 *   autocommit mode: audit rows, this server's chain head and the merged key
 *   use counts (audit.ts appendChainRows).
 * - A batch with changes is one transaction: each change in its own
 *   savepoint (one that throws is rolled back alone and its request fails
 *   with that error), then that same statement, then COMMIT.
 * - One batch at a time: this server's chain is appended in order, and a
 *   busy server sends bigger batches rather than more round trips.
 * - Durability, as on SQLite: a batch with changes commits with
 *   synchronous_commit=on (its replies leave once PostgreSQL flushed the WAL,
 *   and reached synchronous standbys). A batch of read-only requests'
 *   audit rows under 'changes' (the default) commits with
 *   synchronous_commit=off: committed and visible before the replies, so it
 *   survives kill -9 of this server; a crash of PostgreSQL itself can lose
 *   the last 3 × wal_writer_delay of them (set wal_writer_delay = 10ms to
 *   match SQLite's 10 ms). Under 'all' every batch waits for the flush.
 *   A later synchronous commit flushes every earlier WAL record too, so a
 *   change is never durable while an earlier read's row is not.
 * - The database unreachable: the batch's requests fail with
 *   StorageUnavailable (UNAVAILABLE to clients), their use counts are kept
 *   for the next batch, and the next batch tries again on a fresh connection.
 */
import type { AuditRecord } from '../audit.js';
import type { Change, CommitQueue, Durability } from '../backend.js';
import type { KeyUse, KeyUses } from '../key-uses.js';
import type { Logger } from '../log.js';
import { appendChainRows, ChainConflict, readChainHead, type ChainHead } from './audit.js';
import { PgTx } from './backend.js';
import type { PgStore, Queryable } from './store.js';

interface Item {
  readonly record: AuditRecord;
  readonly change: Change | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

/** Appends retried after a ChainConflict (another writer on this chain id) before giving up. */
const MAX_CONFLICT_RETRIES = 5;

export class PgGroupCommit implements CommitQueue {
  private items: Item[] = [];
  private running: Promise<void> | undefined;
  private scheduled = false;
  /** This chain's head as last written; undefined = read it again (start, or after a failure). */
  private head: ChainHead | undefined;
  private usesTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: PgStore,
    private readonly chain: string,
    private readonly uses: KeyUses,
    private readonly logger: Logger,
    private readonly durability: Durability = 'changes',
  ) {}

  enqueue(record: AuditRecord): Promise<void> {
    return this.add(record, undefined);
  }

  commit(change: Change, record: AuditRecord): Promise<void> {
    return this.add(record, change);
  }

  noteKeyUse(keyRowId: number, nowMs: number): void {
    this.uses.note(keyRowId, nowMs);
    if (this.usesTimer) return;
    this.usesTimer = setTimeout(() => {
      this.usesTimer = undefined;
      this.flush(true);
    }, this.uses.intervalMs);
    this.usesTimer.unref();
  }

  flush(allUses = false): void {
    this.scheduled = false;
    if (this.running) {
      // The next batch starts when this one ends (run() loops); use counts are taken then.
      this.scheduled = true;
      return;
    }
    this.running = this.run(allUses).finally(() => {
      this.running = undefined;
      if (this.scheduled || this.items.length > 0) this.flush();
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.usesTimer);
    this.usesTimer = undefined;
    while (this.running) await this.running;
    this.flush(true);
    while (this.running) await this.running;
  }

  private add(record: AuditRecord, change: Change | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.items.push({ record, change, resolve, reject });
      if (!this.scheduled && !this.running) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private async run(allUses: boolean): Promise<void> {
    const items = this.items;
    this.items = [];
    const uses = this.uses.take(allUses);
    if (items.length === 0 && uses === undefined) return;
    const failed = new Map<Item, unknown>();
    try {
      if (items.some((item) => item.change)) {
        await this.store.tx(async (client) => {
          const tx = new PgTx(client);
          for (const item of items) {
            if (!item.change) continue;
            await client.query('SAVEPOINT change');
            try {
              await item.change(tx);
              await client.query('RELEASE SAVEPOINT change');
            } catch (error) {
              await client.query('ROLLBACK TO SAVEPOINT change');
              await client.query('RELEASE SAVEPOINT change');
              failed.set(item, error);
            }
          }
          await this.append(client, items.filter((item) => !failed.has(item)), uses);
        });
      } else if (this.durability === 'changes') {
        await this.append({ query: (text, params) => this.store.queryUnflushed(text, params) }, items, uses);
      } else {
        await this.append(this.store, items, uses);
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

  /** Appends to this server's chain, re-reading the head when another writer moved it. */
  private async append(db: Queryable, items: readonly Item[], uses: Map<number, KeyUse> | undefined): Promise<void> {
    const records = items.map((item) => item.record);
    for (let attempt = 0; ; attempt++) {
      this.head ??= await readChainHead(db, this.chain);
      try {
        this.head = await appendChainRows(db, this.chain, this.head, records, uses);
        return;
      } catch (error) {
        this.head = undefined;
        if (!(error instanceof ChainConflict) || attempt >= MAX_CONFLICT_RETRIES) throw error;
      }
    }
  }
}
