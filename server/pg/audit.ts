/**
 * The audit trail in PostgreSQL: one hash chain per writer.
 *
 * Each server appends to its own chain (its server id; vhsm-admin to
 * "admin"), each row hashing the previous row of that chain:
 *   hash = SHA-256(previous hash || JSON [chain, seq, ...the SQLite row's fields])
 * so rows cannot move between chains, and writers never wait on each other.
 * audit_heads holds each chain's last seq and hash, moved in the same
 * statement as the rows it covers. A chain named "" holds rows copied from a
 * SQLite store by `vhsm-admin migrate`; they keep their original encoding
 * and hashes, so the copy verifies against the same anchors.
 *
 * What is ordered: the rows of one chain (one server's requests, in the
 * order their batches committed). What is not: rows of different chains
 * relative to each other; time_ms orders them roughly, nothing more.
 */
import { createHash } from 'node:crypto';
import { canonicalAuditRow, GENESIS_HASH, toAuditRow, type AuditAnchor, type AuditProblem, type AuditRecord, type AuditRow } from '../audit.js';
import type { Prepared, Queryable } from './store.js';
import { CommitCheckFailed, type CommitCheck } from '../backend.js';

/** The chain's encoding of a row: the SQLite one, prefixed with the chain name (except the migrated chain ""). */
export function canonicalChainRow(chain: string, seq: number, record: AuditRecord): string {
  const base = canonicalAuditRow(seq, record);
  return chain === '' ? base : `[${JSON.stringify(chain)},${base.slice(1)}`;
}

export function chainRowHash(previous: Uint8Array, chain: string, seq: number, record: AuditRecord): Buffer {
  return encodedRowHash(previous, canonicalChainRow(chain, seq, record));
}

function encodedRowHash(previous: Uint8Array, encoded: string): Buffer {
  return createHash('sha256').update(previous).update(encoded, 'utf8').digest();
}

export interface ChainHead {
  seq: number;
  hash: Buffer;
}

/** Another writer moved this chain's head (two servers configured with one id). */
export class ChainConflict extends Error {
  override readonly name = 'ChainConflict';
}

export async function readChainHead(db: Queryable, chain: string): Promise<ChainHead> {
  const result = await db.query<{ seq: number; hash: Buffer }>('SELECT seq, hash FROM audit_heads WHERE chain = $1', [chain]);
  const row = result.rows[0];
  return row ? { seq: row.seq, hash: row.hash } : { seq: 0, hash: GENESIS_HASH };
}

/**
 * appendChainRows' one statement, prepared once per connection. The rows
 * arrive as one JSON array of their canonical encodings (the very strings
 * that were hashed: $5, element 0 the chain, 1 the seq, ... 12 proc_start)
 * and their hashes as one bytea of 32-byte slices ($6): PostgreSQL unpacks
 * them. Sending 13 array parameters instead cost this server a third more
 * CPU per batch (array literals built and escaped in JavaScript), measured.
 * The CommitChecks come split and deduplicated, since a batch's rows repeat
 * a few containers and fewer keys: the distinct [user id, ctid] pairs ($7)
 * and [user id, key id, key row id] triples ($8); the use counts ($9: [key
 * row id, count, last use]) come as JSON too.
 */
const APPEND_CHAIN_ROWS: Prepared = {
  name: 'vhsm_append_chain_rows',
  text: `WITH bad_containers AS (
       SELECT c.n FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS c(v, n)
       WHERE NOT EXISTS (SELECT 1 FROM user_containers uc WHERE uc.user_id = (c.v->>0)::bigint AND uc.container = (c.v->>1)::bigint)
     ), bad_keys AS (
       SELECT k.n FROM jsonb_array_elements($8::jsonb) WITH ORDINALITY AS k(v, n)
       WHERE NOT EXISTS (SELECT 1 FROM keys WHERE keys.id = (k.v->>2)::bigint AND keys.user_id = (k.v->>0)::bigint AND keys.key_id = k.v->>1)
     ), head AS (
       INSERT INTO audit_heads AS h (chain, seq, hash)
         SELECT $1, $2, $3
         WHERE ($4::bigint = 0 OR EXISTS (SELECT 1 FROM audit_heads WHERE chain = $1))
           AND NOT EXISTS (SELECT 1 FROM bad_containers) AND NOT EXISTS (SELECT 1 FROM bad_keys)
       ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE h.seq = $4 AND h.hash = $10
       RETURNING 1
     ), rows AS (
       INSERT INTO audit (chain, seq, time_ms, container, netns_cookie, pid, uid, gid, "user", op, key_id, result, proc_start, hash)
       SELECT $1, (r.v->>1)::bigint, (r.v->>2)::bigint, (r.v->>3)::bigint, r.v->>4, (r.v->>5)::bigint, (r.v->>6)::bigint, (r.v->>7)::bigint,
              r.v->>8, r.v->>9, r.v->>10, r.v->>11, r.v->>12, substring($6::bytea FROM (r.n::int - 1) * 32 + 1 FOR 32)
       FROM jsonb_array_elements($5::jsonb) WITH ORDINALITY AS r(v, n)
       WHERE EXISTS (SELECT 1 FROM head)
     ), uses AS (
       UPDATE keys SET use_count = keys.use_count + (u.v->>1)::bigint, last_used_ms = greatest(keys.last_used_ms, (u.v->>2)::bigint)
       FROM jsonb_array_elements($9::jsonb) AS u(v)
       WHERE keys.id = (u.v->>0)::bigint AND EXISTS (SELECT 1 FROM head)
     )
     SELECT (SELECT count(*) FROM head)::int AS moved,
            ARRAY(SELECT n FROM bad_containers)::int[] AS bad_containers,
            ARRAY(SELECT n FROM bad_keys)::int[] AS bad_keys`,
};

/** Rows hashed onto a head, ready to write: `head` is the chain's head after them. */
export interface ChainRows {
  readonly head: ChainHead;
  /** Each row's canonicalChainRow: what was hashed, and what PostgreSQL stores the columns from. */
  readonly encoded: readonly string[];
  readonly hashes: readonly Buffer[];
}

/** Hashes `records` onto `head` (no I/O). */
export function hashChainRows(head: ChainHead, chain: string, records: readonly AuditRecord[]): ChainRows {
  if (chain === '') throw new Error('the chain "" holds migrated rows only: it is copied, never appended to');
  let { seq, hash } = head;
  const encoded: string[] = [];
  const hashes: Buffer[] = [];
  for (const record of records) {
    seq += 1;
    const text = canonicalChainRow(chain, seq, record);
    hash = encodedRowHash(hash, text);
    encoded.push(text);
    hashes.push(hash);
  }
  return { head: { seq, hash }, encoded, hashes };
}

/** Some rows' CommitChecks failed: nothing was written. `failed`: row index (0-based) → why. */
export class ChecksFailed extends Error {
  override readonly name = 'ChecksFailed';
  constructor(readonly failed: ReadonlyMap<number, CommitCheckFailed>) {
    super(`${failed.size} session check(s) failed at commit`);
  }
}

/** Distinct values, and for each row the index of its own (-1: none). */
class Distinct<T> {
  readonly values: T[] = [];
  readonly byRow: number[] = [];
  private readonly seen = new Map<string, number>();

  add(key: string | undefined, value: () => T): void {
    if (key === undefined) {
      this.byRow.push(-1);
      return;
    }
    let at = this.seen.get(key);
    if (at === undefined) {
      at = this.values.push(value()) - 1;
      this.seen.set(key, at);
    }
    this.byRow.push(at);
  }
}

/** A batch's CommitChecks as the statement takes them: containers and keys each deduplicated. */
function splitChecks(checks: readonly (CommitCheck | undefined)[]): { containers: Distinct<[number, number]>; keys: Distinct<[number, string, number]> } {
  const containers = new Distinct<[number, number]>();
  const keys = new Distinct<[number, string, number]>();
  for (const c of checks) {
    containers.add(c && `${c.userId}/${c.ctid}`, () => [c!.userId, c!.ctid]);
    keys.add(c && `${c.userId}/${c.keyRowId}/${c.keyId}`, () => [c!.userId, c!.keyId, c!.keyRowId]);
  }
  return { containers, keys };
}

/**
 * One statement that writes `rows` (hashed onto `head`) and moves the head,
 * only if the head is still `head`, seq and hash (else ChainConflict), and
 * only if every row's CommitCheck (`checks`, by row; undefined: none) still
 * holds (else ChecksFailed); either way nothing is written then. `uses`
 * (key row id → count, last use) are merged in the same statement with
 * `use_count = use_count + n`, so no server's counts overwrite another's.
 */
export async function writeChainRows(
  db: Queryable,
  chain: string,
  head: ChainHead,
  rows: ChainRows,
  uses?: ReadonlyMap<number, { count: number; lastUsedMs: number }>,
  checks: readonly (CommitCheck | undefined)[] = [],
): Promise<void> {
  if (chain === '') throw new Error('the chain "" holds migrated rows only: it is copied, never appended to');
  // Rows hashed onto another head would break the chain where the CAS cannot see it.
  if (rows.head.seq - rows.encoded.length !== head.seq) {
    throw new Error(`audit rows from seq ${rows.head.seq - rows.encoded.length + 1} do not follow the head at ${head.seq}`);
  }
  const { containers, keys } = splitChecks(checks);
  // The head moves first (a row lock: concurrent appenders to one chain queue
  // here, and the WHERE makes the loser's whole statement a no-op). A chain
  // without a head row is started only by a batch that expects an empty
  // chain: a batch sent after it must not start it at its own seq.
  const result = await db.query<{ moved: number; bad_containers: number[]; bad_keys: number[] }>(APPEND_CHAIN_ROWS, [
    chain, rows.head.seq, rows.head.hash, head.seq,
    `[${rows.encoded.join(',')}]`,
    Buffer.concat(rows.hashes),
    JSON.stringify(containers.values),
    JSON.stringify(keys.values),
    JSON.stringify([...(uses ?? [])].map(([id, use]) => [id, use.count, use.lastUsedMs])),
    head.hash,
  ]);
  const row = result.rows[0];
  if (row && (row.bad_containers.length > 0 || row.bad_keys.length > 0)) {
    const badContainers = new Set(row.bad_containers.map((n) => n - 1));
    const badKeys = new Set(row.bad_keys.map((n) => n - 1));
    const failed = new Map<number, CommitCheckFailed>();
    checks.forEach((_, index) => {
      if (badContainers.has(containers.byRow[index]!)) failed.set(index, new CommitCheckFailed('container'));
      else if (badKeys.has(keys.byRow[index]!)) failed.set(index, new CommitCheckFailed('key'));
    });
    throw new ChecksFailed(failed);
  }
  if (row?.moved !== 1) throw new ChainConflict(`audit chain ${JSON.stringify(chain)} was extended by another writer`);
}

/** hashChainRows + writeChainRows; returns the new head. */
export async function appendChainRows(
  db: Queryable,
  chain: string,
  head: ChainHead,
  records: readonly AuditRecord[],
  uses?: ReadonlyMap<number, { count: number; lastUsedMs: number }>,
): Promise<ChainHead> {
  const rows = hashChainRows(head, chain, records);
  await writeChainRows(db, chain, head, rows, uses);
  return rows.head;
}

interface RawRow {
  chain: string;
  seq: number;
  time_ms: number;
  container: number;
  netns_cookie: string;
  pid: number;
  uid: number;
  gid: number;
  user: string;
  op: string;
  key_id: string;
  result: string;
  proc_start: string | null;
  hash: Buffer;
}

export interface ChainAuditRow extends AuditRow {
  readonly chain: string;
}

function toRow(raw: RawRow): ChainAuditRow {
  // The same row as SQLite's, but the CTID column is "container" (ctid is a system column here).
  return { chain: raw.chain, ...toAuditRow({ ...raw, ctid: raw.container }) };
}

export interface ChainReport {
  readonly chain: string;
  readonly rows: number;
  readonly headSeq: number;
  readonly headHash: string;
}

export interface PgAuditVerifyReport {
  readonly ok: boolean;
  readonly rows: number;
  readonly chains: readonly ChainReport[];
  /** Problems, each naming its chain in `problem` and its row by seq; the first is the first bad row. */
  readonly problems: readonly (AuditProblem & { readonly chain: string })[];
}

const PAGE = 5000;
const MAX_REPORTED_PROBLEMS = 100;

/**
 * Walks every chain (those with a head and those with rows): broken links,
 * gaps, heads that do not match their chain's last row. `anchors` (chain →
 * seq:hash recorded elsewhere) catch a rewritten chain.
 */
export async function verifyChains(db: Queryable, anchors: ReadonlyMap<string, AuditAnchor> = new Map()): Promise<PgAuditVerifyReport> {
  const problems: (AuditProblem & { chain: string })[] = [];
  const report = (chain: string, seq: number, problem: string): void => {
    if (problems.length < MAX_REPORTED_PROBLEMS) problems.push({ chain, seq, problem });
  };
  const heads = new Map<string, ChainHead>();
  for (const row of (await db.query<{ chain: string; seq: number; hash: Buffer }>('SELECT chain, seq, hash FROM audit_heads')).rows) heads.set(row.chain, row);
  const chainNames = new Set(heads.keys());
  for (const row of (await db.query<{ chain: string }>('SELECT DISTINCT chain FROM audit')).rows) chainNames.add(row.chain);
  for (const chain of anchors.keys()) chainNames.add(chain);

  const chains: ChainReport[] = [];
  let total = 0;
  for (const chain of [...chainNames].sort()) {
    let previous: Buffer = GENESIS_HASH;
    let expected = 1;
    let rows = 0;
    const anchor = anchors.get(chain);
    let anchorSeen = false;
    for (;;) {
      const page = await db.query<RawRow>('SELECT * FROM audit WHERE chain = $1 AND seq >= $2 ORDER BY seq LIMIT $3', [chain, expected, PAGE]);
      for (const raw of page.rows) {
        const row = toRow(raw);
        rows += 1;
        if (row.seq !== expected) report(chain, row.seq, `chain ${JSON.stringify(chain)}: rows ${expected}..${row.seq - 1} are missing`);
        if (!chainRowHash(previous, chain, row.seq, row).equals(row.hash)) {
          report(chain, row.seq, `chain ${JSON.stringify(chain)}: hash does not match the row and its predecessor (edited, reordered or a row before it removed)`);
        }
        if (anchor && anchor.seq === row.seq) {
          anchorSeen = true;
          if (row.hash.toString('hex') !== anchor.hash.toLowerCase()) report(chain, row.seq, `chain ${JSON.stringify(chain)}: hash differs from the recorded anchor`);
        }
        previous = row.hash;
        expected = row.seq + 1;
      }
      if (page.rows.length < PAGE) break;
    }
    const head = heads.get(chain);
    const headSeq = head?.seq ?? 0;
    if (headSeq !== expected - 1) report(chain, headSeq, `chain ${JSON.stringify(chain)}: head says ${headSeq} rows but the chain ends at ${expected - 1} (truncated or rows added outside the chain)`);
    else if (head && !head.hash.equals(previous)) report(chain, headSeq, `chain ${JSON.stringify(chain)}: head hash does not match the last row`);
    if (anchor && !anchorSeen) report(chain, anchor.seq, `chain ${JSON.stringify(chain)}: anchor row is missing`);
    chains.push({ chain, rows, headSeq, headHash: (head?.hash ?? GENESIS_HASH).toString('hex') });
    total += rows;
  }
  return { ok: problems.length === 0, rows: total, chains, problems };
}

export interface PgAuditQuery {
  readonly chain?: string;
  /** Only rows with a larger seq (paging within one chain). */
  readonly afterSeq?: number;
  readonly limit?: number;
  readonly user?: string;
  readonly ctid?: number;
  readonly newestFirst?: boolean;
}

/** Rows for `audit show`: by time across chains (not an order the chains promise), then chain and seq. */
export async function readChainRows(db: Queryable, query: PgAuditQuery = {}): Promise<ChainAuditRow[]> {
  const where: string[] = ['true'];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown): void => {
    params.push(value);
    where.push(clause.replace('?', `$${params.length}`));
  };
  if (query.chain !== undefined) add('chain = ?', query.chain);
  if (query.afterSeq) add('seq > ?', query.afterSeq);
  if (query.user !== undefined) add('"user" = ?', query.user);
  if (query.ctid !== undefined) add('container = ?', query.ctid);
  const order = query.newestFirst ? 'DESC' : 'ASC';
  params.push(query.limit ?? 100);
  const result = await db.query<RawRow>(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY time_ms ${order}, chain, seq ${order} LIMIT $${params.length}`, params);
  return result.rows.map(toRow);
}
