/**
 * Raw protocol access for attack tests: send hand-built (or hand-broken)
 * requests and read the decoded Response, bypassing the client library.
 */
import Database from 'better-sqlite3';
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

/** Everything in the DB except the audit log and use counters, for "changed nothing" checks. */
export function snapshot(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const out: Record<string, unknown[]> = {};
    for (const table of ['users', 'user_containers', 'login_failures', 'keys', 'certificates']) {
      out[table] = db
        .prepare(`SELECT * FROM ${table} ORDER BY 1, 2`)
        .all()
        .map((row) =>
          Object.fromEntries(
            Object.entries(row as Record<string, unknown>)
              .filter(([k]) => !STATISTICS.has(k))
              .map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('hex') : v]),
          ),
        );
    }
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}

/** Audit rows as plain objects (for checking what was recorded). */
export function auditRows(dbPath: string): { seq: number; ctid: number; pid: number; user: string; op: string; key_id: string; result: string }[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT seq, ctid, pid, user, op, key_id, result FROM audit ORDER BY seq').all() as never;
  } finally {
    db.close();
  }
}
