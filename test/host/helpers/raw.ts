/**
 * Raw protocol access for attack tests: send hand-built (or hand-broken)
 * requests and read the decoded Response, bypassing the client library.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { isPostgresUrl } from '../../../server/pg/store.js';
import { ERROR_CODES, PROTOCOL_VERSION, decodeResponse, encodeRequest, nameOf, uint64ToSafeNumber, type pb } from '../../../proto/index.js';
import type { ClientTransport } from '../../../transport/types.js';

export interface RawReply {
  readonly id: number | null;
  readonly error: keyof typeof ERROR_CODES | undefined;
  readonly message: string | undefined;
  readonly response: pb.Response;
}

export async function sendRaw(transport: ClientTransport, payload: Uint8Array): Promise<RawReply> {
  const response = decodeResponse(await transport.request(payload, { timeoutMs: 10_000 }));
  return {
    id: uint64ToSafeNumber(response.id),
    error: response.error ? nameOf(ERROR_CODES, response.error.code ?? 0) : undefined,
    message: response.error?.message ?? undefined,
    response,
  };
}

let nextId = 1_000_000;

/** Sends a well-formed request (version and id filled in unless given). */
export function call(transport: ClientTransport, request: pb.Request.$Properties): Promise<RawReply> {
  return sendRaw(transport, encodeRequest({ version: PROTOCOL_VERSION, id: nextId++, ...request }));
}

/** Logs in through the raw protocol and returns the session id. */
export async function rawLogin(transport: ClientTransport, username: string, password: string): Promise<Uint8Array> {
  const reply = await call(transport, { login: { username, password: Buffer.from(password) } });
  if (reply.error) throw new Error(`login failed: ${reply.error}`);
  return new Uint8Array(reply.response.login!.session!);
}

/** Key use counters, written at most once a second: compare them through keyInfo/listKeys, which add pending counts. */
const STATISTICS = new Set(['use_count', 'last_used_ms']);

/** Everything in the DB except the audit log and use counters, for "changed nothing" checks (either backend). */
export async function snapshot(location: string): Promise<string> {
  const out: Record<string, unknown[]> = {};
  for (const table of ['users', 'user_containers', 'login_failures', 'keys', 'certificates']) {
    out[table] = (await selectAll(location, `SELECT * FROM ${table} ORDER BY 1, 2`)).map((row) =>
      Object.fromEntries(
        Object.entries(row)
          .filter(([k]) => !STATISTICS.has(k))
          .map(([k, v]) => [k === 'container' ? 'ctid' : k, Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'boolean' ? Number(v) : v]),
      ),
    );
  }
  return JSON.stringify(out);
}

export interface RawAuditRow {
  seq: number;
  ctid: number;
  pid: number;
  user: string;
  op: string;
  key_id: string;
  result: string;
}

/** Audit rows as plain objects (for checking what was recorded), in append order (PostgreSQL: chain by chain). */
export async function auditRows(location: string): Promise<RawAuditRow[]> {
  const sql = isPostgresUrl(location)
    ? 'SELECT seq, container AS ctid, pid, "user", op, key_id, result FROM audit ORDER BY chain, seq'
    : 'SELECT seq, ctid, pid, user, op, key_id, result FROM audit ORDER BY seq';
  return (await selectAll(location, sql)) as unknown as RawAuditRow[];
}

/** Rows of one query, from a SQLite file (read-only) or a PostgreSQL URL. */
export async function selectAll(location: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  if (isPostgresUrl(location)) {
    // BIGINT as a number, as the server's pool reads it (and as SQLite returns integers).
    const types = { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser };
    const client = new pg.Client({ connectionString: location, types });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  }
  const db = new Database(location, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}
