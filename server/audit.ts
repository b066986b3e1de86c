/**
 * The audit log: an append-only, hash-chained table.
 *
 * Row hash = SHA-256(previous row's hash || canonical encoding of the row),
 * starting from 32 zero bytes. The canonical encoding is the JSON array of
 * the row's fields in a fixed order (numbers as numbers, the netns cookie and
 * the process start as decimal strings; rows written before the kernel
 * stamped the process start have none, and their encoding ends at result). `audit_head` holds the last seq and hash and is updated
 * in the same transaction as every append, so:
 *   - an edited row, or rows swapped, breaks its own link;
 *   - a deleted row leaves a gap in seq and breaks the next link;
 *   - a truncated tail no longer matches the head.
 * Someone who can write the file can still rebuild the whole chain and the
 * head; `verify --anchor SEQ:HASH` checks the chain against a head recorded
 * elsewhere earlier (e.g. printed by `vhsm-admin audit verify` into the
 * host's logs), which catches that too.
 *
 * Never put secrets here: no passwords, key bytes or session ids.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { prepared } from './sql.js';

export interface AuditRecord {
  readonly timeMs: number;
  readonly ctid: number;
  readonly netnsCookie: bigint;
  readonly pid: number;
  /** The sender process's start (ns since boot), as the kernel stamped it; absent in older rows and admin rows. */
  readonly procStart?: bigint;
  readonly uid: number;
  readonly gid: number;
  /** Username the request acted as (or tried to), '' if none. */
  readonly user: string;
  /** Operation name (Request.op), or 'invalid' for undecodable requests. */
  readonly op: string;
  readonly keyId: string;
  /** 'OK' or an ErrorCode name. */
  readonly result: string;
}

export interface AuditRow extends AuditRecord {
  readonly seq: number;
  readonly hash: Buffer;
}

export const GENESIS_HASH: Buffer = Buffer.alloc(32);

export function canonicalAuditRow(seq: number, record: AuditRecord): string {
  return JSON.stringify([
    seq,
    record.timeMs,
    record.ctid,
    record.netnsCookie.toString(10),
    record.pid,
    record.uid,
    record.gid,
    record.user,
    record.op,
    record.keyId,
    record.result,
    ...(record.procStart === undefined ? [] : [record.procStart.toString(10)]),
  ]);
}

export function chainHash(previous: Uint8Array, seq: number, record: AuditRecord): Buffer {
  return createHash('sha256').update(previous).update(canonicalAuditRow(seq, record), 'utf8').digest();
}

interface HeadRow {
  seq: number;
  hash: Buffer;
}

function readHead(db: Database.Database): HeadRow {
  const head = prepared(db, 'SELECT seq, hash FROM audit_head WHERE id = 1').get() as HeadRow | undefined;
  if (!head) throw new Error('audit_head row is missing');
  return head;
}

/** Appends records after the current head. Must run inside a write transaction. */
export function appendAuditRows(db: Database.Database, records: readonly AuditRecord[]): void {
  if (records.length === 0) return;
  let { seq, hash } = readHead(db);
  const insert = prepared(
    db,
    `INSERT INTO audit (seq, time_ms, ctid, netns_cookie, pid, uid, gid, user, op, key_id, result, hash, proc_start)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const record of records) {
    seq += 1;
    hash = chainHash(hash, seq, record);
    const procStart = record.procStart === undefined ? null : record.procStart.toString(10);
    insert.run(seq, record.timeMs, record.ctid, record.netnsCookie.toString(10), record.pid, record.uid, record.gid, record.user, record.op, record.keyId, record.result, hash, procStart);
  }
  prepared(db, 'UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1').run(seq, hash);
}

export interface RawAuditRow {
  seq: number;
  time_ms: number;
  ctid: number;
  netns_cookie: string;
  pid: number;
  uid: number;
  gid: number;
  user: string;
  op: string;
  key_id: string;
  result: string;
  hash: Buffer;
  proc_start: string | null;
}

export function toAuditRow(raw: RawAuditRow): AuditRow {
  return {
    seq: raw.seq,
    timeMs: raw.time_ms,
    ctid: raw.ctid,
    netnsCookie: BigInt(raw.netns_cookie),
    pid: raw.pid,
    ...(raw.proc_start === null ? {} : { procStart: BigInt(raw.proc_start) }),
    uid: raw.uid,
    gid: raw.gid,
    user: raw.user,
    op: raw.op,
    keyId: raw.key_id,
    result: raw.result,
    hash: raw.hash,
  };
}

export interface AuditQuery {
  /** Rows with seq > afterSeq. */
  readonly afterSeq?: number;
  readonly limit?: number;
  readonly user?: string;
  readonly ctid?: number;
  /** Newest first (for `audit show --tail`). */
  readonly newestFirst?: boolean;
}

export function readAuditRows(db: Database.Database, query: AuditQuery = {}): AuditRow[] {
  const where = ['seq > ?'];
  const params: (number | string)[] = [query.afterSeq ?? 0];
  if (query.user !== undefined) {
    where.push('user = ?');
    params.push(query.user);
  }
  if (query.ctid !== undefined) {
    where.push('ctid = ?');
    params.push(query.ctid);
  }
  const order = query.newestFirst ? 'DESC' : 'ASC';
  const rows = db
    .prepare(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq ${order} LIMIT ?`)
    .all(...params, query.limit ?? 100) as RawAuditRow[];
  return rows.map(toAuditRow);
}

export interface AuditAnchor {
  readonly seq: number;
  readonly hash: string; // hex
}

export interface AuditProblem {
  readonly seq: number;
  readonly problem: string;
}

export interface AuditVerifyReport {
  readonly ok: boolean;
  readonly rows: number;
  readonly headSeq: number;
  readonly headHash: string;
  readonly problems: readonly AuditProblem[];
}

const MAX_REPORTED_PROBLEMS = 100;

/** Walks the whole chain; reports every broken link, gap, head mismatch and anchor mismatch. */
export function verifyAuditChain(db: Database.Database, anchor?: AuditAnchor): AuditVerifyReport {
  const problems: AuditProblem[] = [];
  const report = (seq: number, problem: string): void => {
    if (problems.length < MAX_REPORTED_PROBLEMS) problems.push({ seq, problem });
  };
  let previousHash: Buffer = GENESIS_HASH;
  let expectedSeq = 1;
  let rows = 0;
  let anchorSeen = false;
  for (const raw of db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<RawAuditRow>) {
    const row = toAuditRow(raw);
    rows += 1;
    if (row.seq !== expectedSeq) report(row.seq, `rows ${expectedSeq}..${row.seq - 1} are missing`);
    const computed = chainHash(previousHash, row.seq, row);
    if (!computed.equals(row.hash)) report(row.seq, 'hash does not match the row and its predecessor (edited, reordered or a row before it removed)');
    if (anchor && row.seq === anchor.seq) {
      anchorSeen = true;
      if (row.hash.toString('hex') !== anchor.hash.toLowerCase()) report(row.seq, 'hash differs from the recorded anchor');
    }
    previousHash = row.hash; // continue from the stored hash so later breaks are reported separately
    expectedSeq = row.seq + 1;
  }
  const head = readHead(db);
  if (head.seq !== expectedSeq - 1) report(head.seq, `head says ${head.seq} rows but the table ends at ${expectedSeq - 1} (truncated or rows added outside the chain)`);
  else if (!head.hash.equals(previousHash)) report(head.seq, 'head hash does not match the last row');
  if (anchor && !anchorSeen) report(anchor.seq, 'anchor row is missing');
  return { ok: problems.length === 0, rows, headSeq: head.seq, headHash: head.hash.toString('hex'), problems };
}
