/**
 * A flooding client that skips the client library: it logs in once, then
 * replays one pre-encoded request, so the load it puts on the process is
 * the server's work, not its own encoding (the benchmarks run client and
 * server in one process over the in-memory transport, or many clients in
 * one agent over the module).
 */
import { PROTOCOL_VERSION, SIGNATURE_ALGORITHMS, decodeResponse, encodeRequest } from '../../proto/index.js';
import type { ClientTransport } from '../../transport/types.js';

export async function rawLogin(transport: ClientTransport, username: string, password: string): Promise<Uint8Array> {
  const reply = decodeResponse(
    await transport.request(encodeRequest({ version: PROTOCOL_VERSION, id: 1, login: { username, password: new TextEncoder().encode(password) } })),
  );
  if (!reply.login?.session) throw new Error(`login failed: ${reply.error?.message ?? 'no session'}`);
  return new Uint8Array(reply.login.session);
}

/** A sign request with the key type's default algorithm (ecdsa-sha256 for ec-p256). */
export function signRequest(session: Uint8Array, keyId: string, data: Uint8Array): Uint8Array {
  return encodeRequest({
    version: PROTOCOL_VERSION,
    id: 2,
    session,
    sign: { keyId, data, algorithm: SIGNATURE_ALGORITHMS['ecdsa-sha256'], encoding: 0, prehashed: false },
  });
}

export interface Flood {
  /** Replies received so far (answers of any kind). */
  readonly replies: number;
  readonly errors: number;
  /** Stops sending; resolves when every request in flight is answered. */
  stop(): Promise<void>;
}

/** Keeps `inFlight` copies of `payload` outstanding on `transport` until stopped. */
export function flood(transport: ClientTransport, payload: Uint8Array, inFlight: number): Flood {
  let stopping = false;
  let replies = 0;
  let errors = 0;
  const loop = async (): Promise<void> => {
    while (!stopping) {
      try {
        await transport.request(payload);
        replies += 1;
      } catch {
        errors += 1;
      }
    }
  };
  const loops = Array.from({ length: inFlight }, loop);
  return {
    get replies() {
      return replies;
    },
    get errors() {
      return errors;
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}
