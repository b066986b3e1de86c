/**
 * In-memory transport: a fake of the kernel module for host tests and
 * benchmarks. One hub plays the module: it stamps each client's requests with
 * the SenderIdentity the client was created with (the test's stand-in for
 * the kernel stamp), assigns request ids, tracks pending requests, and fails
 * them with the same TransportError codes the real module produces.
 *
 * Like the real thing, payloads are copied (no buffer is shared between the
 * two sides), delivery is asynchronous, and a client that closes with
 * requests pending cancels them at the server.
 */
import {
  TransportError,
  type ClientTransport,
  type RequestOptions,
  type SenderIdentity,
  type ServerTransport,
  type StampedRequest,
} from './types.js';

export interface MemoryTransportOptions {
  /** Largest payload in either direction (the kernel's VHSM_PAYLOAD_MAX). */
  readonly maxPayloadBytes?: number;
}

interface Pending {
  readonly client: MemoryClientTransport;
  resolve(payload: Uint8Array): void;
  reject(error: TransportError): void;
  /** The client closed: its promise fails now, the entry waits for the server's reply (as in the module). */
  orphan(): void;
}

const DEFAULT_MAX_PAYLOAD = 32 * 1024;

function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export class MemoryTransportHub {
  readonly maxPayloadBytes: number;
  private server: MemoryServerTransport | undefined;
  private nextRequestId = 1n;
  private readonly pending = new Map<bigint, Pending>();

  constructor(options: MemoryTransportOptions = {}) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD;
  }

  /** The server side. Only one may be listening at a time (EBUSY otherwise), like the module. */
  createServerTransport(): ServerTransport {
    return new MemoryServerTransport(this);
  }

  /** A client whose every request is stamped with `identity`. */
  connect(identity: SenderIdentity): ClientTransport {
    return new MemoryClientTransport(this, { ...identity });
  }

  /** Requests delivered to the server and not yet answered (or failed). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** @internal */
  register(server: MemoryServerTransport): void {
    if (this.server !== undefined && this.server !== server) {
      throw new TransportError('EBUSY', 'another server is registered');
    }
    this.server = server;
  }

  /** @internal Server went away: every pending request fails with ECONNRESET. */
  unregister(server: MemoryServerTransport): void {
    if (this.server !== server) return;
    this.server = undefined;
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      entry.reject(new TransportError('ECONNRESET', 'server closed with the request pending'));
    }
  }

  /** @internal */
  submit(client: MemoryClientTransport, identity: SenderIdentity, payload: Uint8Array, options: RequestOptions | undefined): Promise<Uint8Array> {
    if (payload.length > this.maxPayloadBytes) {
      return Promise.reject(new TransportError('EMSGSIZE', `payload of ${payload.length} bytes exceeds ${this.maxPayloadBytes}`));
    }
    const server = this.server;
    if (server === undefined) return Promise.reject(new TransportError('ECONNREFUSED', 'no server registered'));
    const requestId = this.nextRequestId++;
    const stamped: StampedRequest = { requestId, sender: { ...identity }, payload: copy(payload) };
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.pending.delete(requestId);
      };
      this.pending.set(requestId, {
        client,
        resolve: (reply) => {
          settle();
          resolve(reply);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
        orphan: () => {
          if (timer !== undefined) clearTimeout(timer);
          reject(new TransportError('ECLOSED', 'transport closed'));
          const forget = (): void => void this.pending.delete(requestId);
          this.pending.set(requestId, { client, resolve: forget, reject: forget, orphan: () => undefined });
        },
      });
      if (options?.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.pending.get(requestId)?.reject(new TransportError('ETIMEDOUT', `no reply within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
      setImmediate(() => {
        if (this.pending.has(requestId)) server.deliver(stamped);
      });
    });
  }

  /** @internal */
  answer(server: MemoryServerTransport, requestId: bigint, payload: Uint8Array): Promise<void> {
    if (this.server !== server) return Promise.reject(new TransportError('EPERM', 'not the registered server'));
    if (payload.length > this.maxPayloadBytes) {
      return Promise.reject(new TransportError('EMSGSIZE', `reply of ${payload.length} bytes exceeds ${this.maxPayloadBytes}`));
    }
    const entry = this.pending.get(requestId);
    if (entry === undefined) return Promise.reject(new TransportError('ENOENT', `no pending request ${requestId}`));
    this.pending.delete(requestId);
    const reply = copy(payload);
    setImmediate(() => entry.resolve(reply));
    return Promise.resolve();
  }

  /** @internal The client fails its own requests; the server hears of each (as from the module's CANCEL). */
  dropClient(client: MemoryClientTransport): void {
    for (const [requestId, entry] of [...this.pending]) {
      if (entry.client !== client) continue;
      entry.orphan();
      const server = this.server;
      if (server !== undefined) setImmediate(() => server.cancel(requestId));
    }
  }
}

class MemoryServerTransport implements ServerTransport {
  private handler: ((request: StampedRequest) => void) | undefined;
  private onCancel: ((requestId: bigint) => void) | undefined;
  private closed = false;

  constructor(private readonly hub: MemoryTransportHub) {}

  listen(handler: (request: StampedRequest) => void, onCancel?: (requestId: bigint) => void): void {
    if (this.closed) throw new TransportError('ECLOSED', 'transport closed');
    if (this.handler !== undefined) throw new TransportError('EBUSY', 'already listening');
    this.hub.register(this);
    this.handler = handler;
    this.onCancel = onCancel;
  }

  reply(requestId: bigint, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new TransportError('ECLOSED', 'transport closed'));
    return this.hub.answer(this, requestId, payload);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    this.hub.unregister(this);
  }

  /** @internal */
  deliver(request: StampedRequest): void {
    this.handler?.(request);
  }

  /** @internal */
  cancel(requestId: bigint): void {
    this.onCancel?.(requestId);
  }
}

class MemoryClientTransport implements ClientTransport {
  private closed = false;

  constructor(
    private readonly hub: MemoryTransportHub,
    private readonly identity: SenderIdentity,
  ) {}

  request(payload: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new TransportError('ECLOSED', 'transport closed'));
    return this.hub.submit(this, this.identity, payload, options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.dropClient(this);
  }
}
