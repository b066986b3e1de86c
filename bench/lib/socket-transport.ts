/**
 * A bench-only stand-in for the kernel hop on the host, where the module
 * cannot be loaded: clients in another process reach the server over a Unix
 * stream socket, one write per request and per reply, so each round trip
 * pays the two cross-process wake-ups that vhsm_transport.ko (or p11-kit's
 * RPC) pays. It is NOT a transport for use: the sender's identity comes from
 * the client's own hello frame (the module's stamp is what makes it
 * unforgeable), there are no quotas and no CANCEL.
 *
 * Frames, both ways: u32 LE length of what follows, u32 LE tag, payload.
 * The first frame on a connection is the hello: tag = CTID, payload = u32 PID.
 * Requests carry the client's sequence number as the tag; its reply the same.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { TransportError, type ClientTransport, type SenderIdentity, type ServerTransport, type StampedRequest } from '../../transport/types.js';

const HEADER = 8;
const MAX_FRAME = 64 * 1024;

function frame(tag: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(4 + payload.length, 0);
  out.writeUInt32LE(tag, 4);
  out.set(payload, HEADER);
  return out;
}

/** Calls `onFrame(tag, payload)` for each whole frame read from `socket`. */
function readFrames(socket: Socket, onFrame: (tag: number, payload: Buffer) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const length = buffered.readUInt32LE(0);
      if (length < 4 || length > MAX_FRAME) {
        socket.destroy(new Error(`bad frame length ${length}`));
        return;
      }
      if (buffered.length < 4 + length) break;
      onFrame(buffered.readUInt32LE(4), buffered.subarray(HEADER, 4 + length));
      buffered = buffered.subarray(4 + length);
    }
  });
}

export class SocketServerTransport implements ServerTransport {
  private handler: ((request: StampedRequest) => void) | undefined;
  private readonly pending = new Map<bigint, { socket: Socket; tag: number }>();
  private readonly sockets = new Set<Socket>();
  private nextId = 1n;

  private constructor(
    private readonly server: Server,
    private readonly stamp: (ctid: number, pid: number) => SenderIdentity,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on `path`; `stamp` turns a hello's (CTID, PID) into the identity its requests carry. */
  static listen(path: string, stamp: (ctid: number, pid: number) => SenderIdentity): Promise<SocketServerTransport> {
    const server = createServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve(new SocketServerTransport(server, stamp)));
    });
  }

  listen(handler: (request: StampedRequest) => void): void {
    this.handler = handler;
  }

  reply(requestId: bigint, payload: Uint8Array): Promise<void> {
    const entry = this.pending.get(requestId);
    if (!entry) return Promise.reject(new TransportError('ENOENT', `no pending request ${requestId}`));
    this.pending.delete(requestId);
    if (!entry.socket.destroyed) entry.socket.write(frame(entry.tag, payload));
    return Promise.resolve();
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let sender: SenderIdentity | undefined;
    readFrames(socket, (tag, payload) => {
      if (!sender) {
        sender = this.stamp(tag, payload.readUInt32LE(0));
        return;
      }
      const requestId = this.nextId++;
      this.pending.set(requestId, { socket, tag });
      this.handler?.({ requestId, sender, payload: new Uint8Array(payload) });
    });
  }
}

/** A client in another process: one connection, requests matched to replies by tag. */
export function connectSocketTransport(path: string, ctid: number, pid: number): Promise<ClientTransport> {
  const socket = createConnection(path);
  const waiting = new Map<number, { resolve: (reply: Uint8Array) => void; reject: (error: Error) => void }>();
  let lastTag = 0;
  readFrames(socket, (tag, payload) => {
    const entry = waiting.get(tag);
    waiting.delete(tag);
    entry?.resolve(new Uint8Array(payload));
  });
  socket.on('close', () => {
    for (const entry of waiting.values()) entry.reject(new TransportError('ECONNRESET', 'bench socket closed'));
    waiting.clear();
  });
  const transport: ClientTransport = {
    request(payload) {
      if (socket.destroyed) return Promise.reject(new TransportError('ECLOSED', 'bench socket closed'));
      lastTag = (lastTag + 1) >>> 0;
      const tag = lastTag;
      return new Promise((resolve, reject) => {
        waiting.set(tag, { resolve, reject });
        socket.write(frame(tag, payload));
      });
    },
    close() {
      socket.end();
      return Promise.resolve();
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => undefined); // 'close' fails what is in flight
      const pidBytes = Buffer.alloc(4);
      pidBytes.writeUInt32LE(pid, 0);
      socket.write(frame(ctid, pidBytes));
      resolve(transport);
    });
  });
}

/**
 * One ServerTransport over two (the bench's in-memory hub and this socket):
 * request ids become id * 2 + side, so each reply finds its way back.
 */
export function mergeServerTransports(first: ServerTransport, second: ServerTransport): ServerTransport {
  const sides = [first, second] as const;
  return {
    listen(handler, onCancel) {
      sides.forEach((side, index) =>
        side.listen(
          (request) => handler({ ...request, requestId: request.requestId * 2n + BigInt(index) }),
          onCancel && ((requestId) => onCancel(requestId * 2n + BigInt(index))),
        ),
      );
    },
    reply(requestId, payload) {
      return sides[Number(requestId & 1n)]!.reply(requestId >> 1n, payload);
    },
    async close() {
      await Promise.all(sides.map((side) => side.close()));
    },
  };
}
