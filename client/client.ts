/**
 * VhsmClient: one connection (transport) to the server. Many requests may be
 * in flight at once; each carries its own id and the reply must echo it.
 *
 *   const client = await VhsmClient.connect(transport);
 *   const session = await client.login('alice', password);
 *   const key = await session.generateKey({ type: 'ec-p256' });
 *   const signature = await session.sign(key.keyId, data);
 *   await session.logout();
 *   const visible = await client.publicObjects('alice'); // no login needed
 *   await client.close();
 */
import {
  ERROR_CODES,
  PROTOCOL_VERSION,
  ProtocolDecodeError,
  decodeResponse,
  encodeRequest,
  nameOf,
  uint64ToSafeNumber,
  type OperationName,
  type pb,
} from '../proto/index.js';
import { TransportError, type ClientTransport } from '../transport/types.js';
import { passwordBytes, toPublicObjectPage } from './convert.js';
import { VhsmError } from './errors.js';
import { VhsmSession } from './session.js';
import type { CallOptions, PublicObjectPage, PublicObjects, PublicObjectsOptions } from './types.js';

export interface VhsmClientOptions {
  /** Default per-call deadline in milliseconds. Default 30 s. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

type RequestBody<K extends OperationName> = NonNullable<pb.Request.$Properties[K]>;
type ResultBody<K extends OperationName> = NonNullable<pb.Response[K]>;

export class VhsmClient {
  private nextId = 1;
  private closed = false;
  private readonly sessions = new Set<VhsmSession>();

  private constructor(
    private readonly transport: ClientTransport,
    private readonly timeoutMs: number,
  ) {}

  /** Wraps a transport (in-memory or netlink). Takes ownership: close() closes it. */
  static async connect(transport: ClientTransport, options: VhsmClientOptions = {}): Promise<VhsmClient> {
    return new VhsmClient(transport, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  /** Logs in from this process; the session works only from here. The password bytes are zeroed after sending. */
  async login(username: string, password: string | Uint8Array, options?: CallOptions): Promise<VhsmSession> {
    const secret = passwordBytes(password);
    try {
      const result = await this.call('login', { username, password: secret.bytes }, null, options);
      const sessionId = new Uint8Array(result.session ?? new Uint8Array(0));
      const session = new VhsmSession(this, username, sessionId, result.idleTimeoutMs ?? 0, (ended) => this.sessions.delete(ended));
      this.sessions.add(session);
      return session;
    } finally {
      secret.release();
    }
  }

  /**
   * One page of `username`'s public objects, without logging in: public keys
   * of key pairs (after `afterKeyId`, at most `limit`, fewer when they would
   * not fit one reply) and, on the first page, every certificate. Only from
   * a container the user may log in from; NOT_ALLOWED otherwise, the same
   * answer as for an unknown user.
   */
  async listPublicObjects(username: string, options: PublicObjectsOptions = {}): Promise<PublicObjectPage> {
    const result = await this.call('listPublicObjects', { username, afterKeyId: options.afterKeyId ?? '', limit: options.limit ?? 0 }, null, options);
    return toPublicObjectPage(result);
  }

  /** All of `username`'s public objects (follows the pages), without logging in. */
  async publicObjects(username: string, options?: CallOptions): Promise<PublicObjects> {
    const first = await this.listPublicObjects(username, options);
    const keys = [...first.keys];
    for (let after = first.nextAfterKeyId; after !== ''; ) {
      const page = await this.listPublicObjects(username, { ...options, afterKeyId: after });
      keys.push(...page.keys);
      after = page.nextAfterKeyId;
    }
    return { keys, certificates: first.certificates };
  }

  /** Logs out open sessions (best effort), then closes the transport; in-flight calls fail with ECLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.sessions].map((session) => session.logout({ timeoutMs: 2_000 })));
    this.closed = true;
    await this.transport.close();
  }

  /** @internal Sends one request and returns its result member, or throws VhsmError. */
  async call<K extends OperationName>(op: K, body: RequestBody<K>, session: Uint8Array | null, options?: CallOptions): Promise<ResultBody<K>> {
    if (this.closed) throw new VhsmError('ECLOSED', 'client is closed');
    const id = this.nextId++;
    const payload = encodeRequest({ version: PROTOCOL_VERSION, id, session: session ?? undefined, [op]: body });
    let replyBytes: Uint8Array;
    try {
      replyBytes = await this.exchange(payload, options?.timeoutMs ?? this.timeoutMs);
    } finally {
      payload.fill(0); // may hold a password
    }
    return interpretReply(replyBytes, id, op);
  }

  private async exchange(payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    let timer: NodeJS.Timeout | undefined;
    // Backstop in case a transport does not enforce timeoutMs itself.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TransportError('ETIMEDOUT', `no reply within ${timeoutMs} ms`)), timeoutMs + 50);
    });
    try {
      return await Promise.race([this.transport.request(payload, { timeoutMs }), deadline]);
    } catch (error) {
      if (error instanceof TransportError) throw new VhsmError(error.code, error.message, undefined, { cause: error });
      throw new VhsmError('EIO', error instanceof Error ? error.message : String(error), undefined, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}

function interpretReply<K extends OperationName>(bytes: Uint8Array, id: number, op: K): ResultBody<K> {
  let response: pb.Response;
  try {
    response = decodeResponse(bytes);
  } catch (error) {
    const message = error instanceof ProtocolDecodeError ? error.message : 'undecodable response';
    throw new VhsmError('PROTOCOL_ERROR', message);
  }
  if (response.version !== PROTOCOL_VERSION) throw new VhsmError('PROTOCOL_ERROR', `response version ${response.version}`);
  const responseId = uint64ToSafeNumber(response.id);
  if (response.error) {
    // id 0: the server could not read our request at all.
    if (responseId !== id && responseId !== 0) throw new VhsmError('PROTOCOL_ERROR', 'response id does not match the request');
    const code = nameOf(ERROR_CODES, response.error.code ?? 0);
    throw new VhsmError(code ?? 'UNKNOWN_ERROR', response.error.message || (code ?? 'unknown error'), response.error.retryAfterMs || undefined);
  }
  if (responseId !== id) throw new VhsmError('PROTOCOL_ERROR', 'response id does not match the request');
  const result = response[op];
  if (response.result !== op || result === null || result === undefined) throw new VhsmError('PROTOCOL_ERROR', `expected a ${op} result`);
  return result as ResultBody<K>;
}
