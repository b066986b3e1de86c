/**
 * Audit rows acknowledged before PostgreSQL flushed them, kept until it has.
 *
 * Under durability 'changes' a batch of read-only requests' rows commits
 * with synchronous_commit=off: the replies leave once the rows are committed,
 * but a crash of PostgreSQL (or of one backend, which restarts them all) can
 * drop the WAL it had not written yet. This server still holds those rows,
 * hashed and in order: after a failure it compares the chain's head in the
 * database with what it acknowledged and writes the missing batches again,
 * byte for byte, with a synchronous commit. So an acknowledged row is lost
 * only if PostgreSQL and this server crash together — as on SQLite, where
 * such a row is lost only with the operating system.
 *
 * When are rows flushed: every FLUSH_CHECK_MS one query reads the WAL insert
 * position (every row acknowledged before it lies behind it) and whether the
 * flush position has passed the one read last time; a synchronous commit
 * flushes everything before it too.
 */
import type { KeyUse } from '../key-uses.js';
import type { Logger } from '../log.js';
import { writeChainRows, type ChainHead, type ChainRows } from './audit.js';
import type { Queryable } from './store.js';

interface Batch {
  /** The head the rows were hashed onto. */
  readonly base: ChainHead;
  readonly rows: ChainRows;
  readonly uses: Map<number, KeyUse> | undefined;
  /** Seen by a check: flushed once the WAL flush position passes this.waitLsn. */
  marked: boolean;
}

/** How often the flush position is read while rows wait. */
export const FLUSH_CHECK_MS = 200;

/** Rows held at most; beyond, the oldest are dropped with a warning (PostgreSQL not flushing for that long). */
const MAX_ROWS = 100_000;

const FLUSH_POSITION = {
  name: 'vhsm_wal_flush_position',
  text: `SELECT pg_current_wal_insert_lsn()::text AS now, pg_current_wal_flush_lsn() >= $1::pg_lsn AS flushed,
               (SELECT seq FROM audit_heads WHERE chain = $2) AS head`,
};

export class UnflushedBatches {
  /** In chain order (by base seq): two batches' replies may arrive in either order. */
  private batches: Batch[] = [];
  private rows = 0;
  /** The insert position the marked batches wait for. */
  private waitLsn = '0/0';
  /** Rows are being dropped for MAX_ROWS: warned once until a check succeeds. */
  private overflowing = false;

  constructor(
    private readonly chain: string,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.rows;
  }

  /**
   * `rows` (at least one: a batch of use counts alone is not held, it could
   * not be told apart from one already written) were committed, not
   * flushed, onto `base` and acknowledged.
   */
  add(base: ChainHead, rows: ChainRows, uses: Map<number, KeyUse> | undefined): void {
    let at = this.batches.length;
    while (at > 0 && this.batches[at - 1]!.base.seq > base.seq) at -= 1;
    this.batches.splice(at, 0, { base, rows, uses, marked: false });
    this.rows += rows.encoded.length;
    let dropped = 0;
    while (this.rows > MAX_ROWS && this.batches.length > 1) {
      const oldest = this.batches.shift()!;
      this.rows -= oldest.rows.encoded.length;
      dropped += oldest.rows.encoded.length;
    }
    if (dropped > 0 && !this.overflowing) {
      this.overflowing = true;
      this.logger.log('warn', 'audit rows not confirmed flushed by PostgreSQL for too long: the oldest are no longer held for replay', { chain: this.chain, rows: dropped });
    }
  }

  /** A synchronous commit after every batch held has flushed them all. */
  clear(): void {
    this.batches = [];
    this.rows = 0;
  }

  /**
   * One query: drops the batches PostgreSQL has flushed, marks the newer
   * ones. True if rows acknowledged as committed are gone from the database
   * (it crashed and recovered without them): they are kept, to be written
   * again by replay().
   */
  async checkFlushed(db: Queryable): Promise<boolean> {
    // Only batches acknowledged before the query lie behind the position it reads.
    const present = [...this.batches];
    if (present.length === 0) return false;
    const result = await db.query<{ now: string; flushed: boolean; head: string | number | null }>(FLUSH_POSITION, [this.waitLsn, this.chain]);
    const row = result.rows[0];
    if (!row) return false;
    const lastMarked = this.batches.filter((batch) => batch.marked).pop();
    if (lastMarked && Number(row.head ?? 0) < lastMarked.rows.head.seq) {
      for (const batch of this.batches) batch.marked = false;
      this.waitLsn = '0/0';
      return true;
    }
    // Every marked batch was acknowledged before the position in this.waitLsn.
    if (row.flushed) this.dropMarked();
    this.overflowing = false;
    for (const batch of present) batch.marked = true;
    this.waitLsn = row.now;
    return false;
  }

  /**
   * After a failure: `head` is the chain's head in the database. Batches this
   * server acknowledged beyond it are written again (one statement on `db`,
   * which must commit synchronously) and the head after them returned. They
   * stay held until a later synchronous commit or check: `db` may be a
   * transaction that still fails, and a replay finds rows already there.
   */
  async replay(db: Queryable, head: ChainHead): Promise<ChainHead> {
    const lost = this.lostAfter(head);
    if (lost === undefined) {
      this.logger.log('error', 'acknowledged audit rows are missing from the database and cannot be written again', {
        chain: this.chain,
        head: head.seq,
        held: `${this.batches[0]!.base.seq + 1}..${this.batches[this.batches.length - 1]!.rows.head.seq}`,
      });
      this.clear();
      return head;
    }
    if (lost.length === 0) return head;
    const rows = concatRows(lost.map((batch) => batch.rows));
    await writeChainRows(db, this.chain, head, rows, mergeUses(lost.map((batch) => batch.uses)));
    this.logger.log('warn', 'audit rows lost by PostgreSQL written again', { chain: this.chain, rows: rows.encoded.length, from: head.seq + 1 });
    return rows.head;
  }

  /**
   * The held batches after the database's `head`: none if it is at or past
   * the last of them (a batch committed but not yet held may be past it);
   * undefined if `head` is not a point this server's batches left the chain
   * at (another writer, or rows already dropped as flushed went missing).
   */
  private lostAfter(head: ChainHead): Batch[] | undefined {
    const last = this.batches[this.batches.length - 1];
    if (!last || head.seq > last.rows.head.seq) return [];
    for (const [index, batch] of this.batches.entries()) {
      if (head.seq === batch.base.seq) return batch.base.hash.equals(head.hash) ? this.contiguous(head, this.batches.slice(index)) : undefined;
      if (head.seq === batch.rows.head.seq) return batch.rows.head.hash.equals(head.hash) ? this.contiguous(head, this.batches.slice(index + 1)) : undefined;
    }
    return undefined; // before the first held row, or inside a batch (batches commit whole)
  }

  /**
   * The leading run of `batches` that chains on from `from`, each batch
   * starting where the one before ended. A gap means rows this server
   * committed but never acknowledged (a batch whose reply was lost) are gone
   * too: it cannot write them, so the batches after the gap cannot be chained
   * onto the database; they are reported and no longer held.
   */
  private contiguous(from: ChainHead, batches: Batch[]): Batch[] {
    let end = from;
    for (const [i, batch] of batches.entries()) {
      if (batch.base.seq !== end.seq || !batch.base.hash.equals(end.hash)) {
        this.logger.log('error', 'acknowledged audit rows are missing from the database and cannot be written again', {
          chain: this.chain,
          held: `${batch.base.seq + 1}..${batches[batches.length - 1]!.rows.head.seq}`,
          gap: `${end.seq + 1}..${batch.base.seq}`,
        });
        const unwritable = new Set(batches.slice(i));
        this.batches = this.batches.filter((held) => !unwritable.has(held));
        this.rows = this.batches.reduce((sum, held) => sum + held.rows.encoded.length, 0);
        return batches.slice(0, i);
      }
      end = batch.rows.head;
    }
    return batches;
  }

  private dropMarked(): void {
    while (this.batches[0]?.marked) {
      this.rows -= this.batches.shift()!.rows.encoded.length;
    }
  }
}

function concatRows(parts: readonly ChainRows[]): ChainRows {
  return {
    head: parts[parts.length - 1]!.head,
    encoded: parts.flatMap((part) => part.encoded),
    hashes: parts.flatMap((part) => part.hashes),
  };
}

function mergeUses(all: readonly (Map<number, KeyUse> | undefined)[]): Map<number, KeyUse> | undefined {
  let merged: Map<number, KeyUse> | undefined;
  for (const uses of all) {
    for (const [id, use] of uses ?? []) {
      merged ??= new Map();
      const seen = merged.get(id);
      merged.set(id, seen ? { count: seen.count + use.count, lastUsedMs: Math.max(seen.lastUsedMs, use.lastUsedMs) } : { ...use });
    }
  }
  return merged;
}
