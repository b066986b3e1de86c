/**
 * The seam between the VHSM protocol and how bytes travel.
 *
 * Two implementations: `memory.ts` (in-process, for host tests and
 * benchmarks) and `netlink-*.ts` (through vhsm_transport.ko). Server and
 * client code depend only on these interfaces, so the same suites run over
 * both.
 */

/** Who sent a request, as stamped by the kernel (or by the in-memory fake). */
export interface SenderIdentity {
  /** Container id the host admin bound to the sender's network namespace. */
  readonly ctid: number;
  /** Network namespace cookie: unique for the life of one boot. */
  readonly netnsCookie: bigint;
  /**
   * Sender's process id (tgid) as its container sees it: in the pid
   * namespace the host admin bound with the CTID, whatever namespaces the
   * sender made for itself.
   */
  readonly pid: number;
  /**
   * When the sender's process started (ns since boot). A PID is reused once
   * its process has exited; (pid, procStart) is never reused during a boot.
   */
  readonly procStart: bigint;
  /** Sender's effective uid/gid as its container's user namespace sees them. */
  readonly uid: number;
  readonly gid: number;
}

/** A request as the server receives it. */
export interface StampedRequest {
  /** Kernel-assigned id; the reply must carry it. Never reused. */
  readonly requestId: bigint;
  readonly sender: SenderIdentity;
  readonly payload: Uint8Array;
}

/** Server side: receive stamped requests, answer each one exactly once. */
export interface ServerTransport {
  /**
   * Starts delivery. `handler` is called once per request, in arrival order.
   * `onCancel`, if given, is called for a delivered request whose client
   * went away before its reply: the work may be skipped, but a reply (any
   * payload) still releases the request's share of the queue at once.
   */
  listen(handler: (request: StampedRequest) => void, onCancel?: (requestId: bigint) => void): void;
  /** Sends the reply for `requestId`. Rejects with TransportError. */
  reply(requestId: bigint, payload: Uint8Array): Promise<void>;
  /** Unregisters and releases the socket. Pending requests get ECONNRESET from the kernel. */
  close(): Promise<void>;
}

export interface RequestOptions {
  /** Client-side deadline in milliseconds (the kernel has its own, too). */
  readonly timeoutMs?: number;
}

/** Client side: one request in, one response out; many may be in flight. */
export interface ClientTransport {
  request(payload: Uint8Array, options?: RequestOptions): Promise<Uint8Array>;
  /** Fails every in-flight request with ECLOSED and releases the socket. */
  close(): Promise<void>;
}

/**
 * Stable transport error codes. Kernel errnos keep their names; the rest are
 * raised by the userspace side.
 */
export type TransportErrorCode =
  | 'EACCES' // sender's container is not bound to a CTID
  | 'ECONNREFUSED' // no server registered
  | 'EMSGSIZE' // payload over VHSM_PAYLOAD_MAX
  | 'EAGAIN' // server queue full
  | 'ENOBUFS' // per-container quota of pending requests reached
  | 'ETIMEDOUT' // deadline passed (kernel or client side)
  | 'ECONNRESET' // server went away with the request pending
  | 'EPERM' // not allowed (e.g. reply from a non-server socket)
  | 'EBUSY' // another server is registered
  | 'ENOENT' // unknown request id / family not loaded
  | 'EINVAL' // malformed message
  | 'ECLOSED' // the local transport was closed
  | 'EIO'; // anything else

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    /** Positive errno when the kernel reported the error. */
    readonly errno?: number,
  ) {
    super(message);
  }
}
