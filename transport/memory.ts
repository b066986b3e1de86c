/**
 * In-memory transport: a fake of the kernel module for host tests and
 * benchmarks. One hub plays the module: it stamps each client's requests with
 * the SenderIdentity the client was created with (the test's stand-in for
 * the kernel stamp), assigns request ids, tracks pending requests, and fails
 * them with the same TransportError codes the real module produces.
 *
 * Like the real thing, payloads are copied (no buffer is shared between the
 * two sides) and delivery is asynchronous.
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

  /** @internal */
  dropClient(client: MemoryClientTransport): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.client === client) entry.reject(new TransportError('ECLOSED', 'transport closed'));
    }
  }
}

class MemoryServerTransport implements ServerTransport {
  private handler: ((request: StampedRequest) => void) | undefined;
  private closed = false;

  constructor(private readonly hub: MemoryTransportHub) {}

  listen(handler: (request: StampedRequest) => void): void {
    if (this.closed) throw new TransportError('ECLOSED', 'transport closed');
    if (this.handler !== undefined) throw new TransportError('EBUSY', 'already listening');
    this.hub.register(this);
    this.handler = handler;
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
