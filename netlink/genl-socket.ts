/**
 * A generic netlink socket: sequence numbers, many requests in flight matched
 * to their answers by nlmsg_seq, dumps collected until NLMSG_DONE, per-request
 * timeouts, and a hook for messages nobody asked for (e.g. the kernel's
 * DELIVER messages to the VHSM server).
 */
import {
  NETLINK_GENERIC,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_MIN_TYPE,
} from './constants.js';
import { createNativeSocket, isNativeSocketError, type DatagramCallback, type NativeNetlinkSocket, type NativeSocketError, type NetlinkSocketFactory } from './addon.js';
import type { NlAttr } from './attributes.js';
import { NetlinkFormatError } from './bytes.js';
import { NetlinkError, decodeDone, decodeNlmsgErr } from './errors.js';
import { decodeGenlmsg, encodeGenlmsg, type GenlMessage } from './genl.js';
import { decodeNlmsgHeader, decodeNlmsgs, type NlMessage } from './message.js';

/**
 * How a request completes:
 * - 'ack': NLM_F_ACK is set; resolves at the ACK with every reply before it.
 * - 'reply': no ACK; resolves with the first reply (ops that always answer,
 *   like nlctrl GETFAMILY or a vhsm REQUEST whose RESPONSE comes later).
 * - 'nothing': no ACK and no reply on success; resolves once the socket has
 *   been read past the send (the kernel queues an error synchronously during
 *   the send, so one loop turn with a poll phase is enough to see it).
 */
export type ReplyExpectation = 'ack' | 'reply' | 'nothing';

export interface GenlRequestOptions {
  readonly expect?: ReplyExpectation;
  /** Extra nlmsg_flags, OR-ed with NLM_F_REQUEST (and NLM_F_ACK for 'ack'). */
  readonly flags?: number;
  /** genlmsghdr version; default 1. */
  readonly version?: number;
  /** Overrides the socket's default; 0 or Infinity for none. */
  readonly timeoutMs?: number;
  /** Zero the encoded message once the kernel has it (it may hold secrets: decrypted data, exported keys). */
  readonly wipe?: boolean;
}

export interface GenlSocketOptions {
  /** Netlink protocol; default NETLINK_GENERIC. */
  readonly protocol?: number;
  /** SO_RCVBUF(FORCE) request in bytes; default: the system's. */
  readonly recvBufferBytes?: number;
  /** Default per-request timeout; default 5000 ms. */
  readonly timeoutMs?: number;
  /** 'always' (default) keeps Node alive while open; 'while-pending' only while a request is in flight. */
  readonly keepAlive?: 'always' | 'while-pending';
  /** NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_CAP_ACK; all default on. */
  readonly extAck?: boolean;
  readonly strictCheck?: boolean;
  readonly capAck?: boolean;
  /** NETLINK_NO_ENOBUFS; default off. */
  readonly noEnobufs?: boolean;
  /** Where sockets come from; tests inject fakes here. */
  readonly factory?: NetlinkSocketFactory;
  /** Messages this returns true for go to onUnsolicited() even if their seq matches a request. */
  readonly isUnsolicited?: (message: NlMessage) => boolean;
}

export interface GenlSocketCounters {
  /** ENOBUFS: the kernel dropped messages for this socket. */
  readonly overruns: number;
  /** Datagrams that were not well-formed netlink. */
  readonly malformed: number;
  /** Datagrams from a user-space sender (only the kernel is listened to). */
  readonly foreign: number;
  /** Messages that matched no request and went to onUnsolicited(). */
  readonly unsolicited: number;
  /** Every receive error, overruns included. */
  readonly receiveErrors: number;
}

type PendingMode = ReplyExpectation | 'dump';

interface Pending {
  readonly mode: PendingMode;
  readonly replies: GenlMessage[];
  readonly resolve: (replies: GenlMessage[]) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
  interrupted: boolean;
}

const DEFAULT_TIMEOUT_MS = 5000;
const ENOPROTOOPT = 'ENOPROTOOPT';

function fromNative(error: unknown): unknown {
  return isNativeSocketError(error) ? new NetlinkError(-error.errno, {}, 'local', error.code, error.message) : error;
}

export class GenlSocket {
  private readonly pending = new Map<number, Pending>();
  private readonly unsolicitedHandlers = new Set<(message: NlMessage) => void>();
  private readonly errorHandlers = new Set<(error: Error) => void>();
  private readonly stats = { overruns: 0, malformed: 0, foreign: 0, unsolicited: 0, receiveErrors: 0 };
  private lastSeq = 0;
  private isClosed = false;

  private constructor(
    private readonly native: NativeNetlinkSocket,
    readonly portid: number,
    private readonly options: GenlSocketOptions,
  ) {
    native.start(this.onDatagram);
    if (options.keepAlive === 'while-pending') native.unref();
  }

  /** Opens, configures, binds and starts a socket. */
  static open(options: GenlSocketOptions = {}): GenlSocket {
    const native = (options.factory ?? createNativeSocket)(options.protocol ?? NETLINK_GENERIC);
    try {
      // Older kernels lack some options; the socket works without them.
      const optional = (set: () => void): void => {
        try {
          set();
        } catch (error) {
          if (!isNativeSocketError(error) || error.code !== ENOPROTOOPT) throw error;
        }
      };
      optional(() => native.setExtAck(options.extAck ?? true));
      optional(() => native.setStrictCheck(options.strictCheck ?? true));
      optional(() => native.setCapAck(options.capAck ?? true));
      if (options.noEnobufs) native.setNoEnobufs(true);
      if (options.recvBufferBytes !== undefined) native.setRecvBuffer(options.recvBufferBytes);
      return new GenlSocket(native, native.bind(), options);
    } catch (error) {
      native.close();
      throw fromNative(error);
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }
  /** Requests awaiting their answer. */
  get inFlight(): number {
    return this.pending.size;
  }
  get counters(): GenlSocketCounters {
    return { ...this.stats };
  }

  /** The next free sequence number (never 0, never one in flight). */
  nextSeq(): number {
    do this.lastSeq = this.lastSeq >= 0xffff_ffff ? 1 : this.lastSeq + 1;
    while (this.pending.has(this.lastSeq));
    return this.lastSeq;
  }

  /** A "do" request. See ReplyExpectation for when it resolves. */
  request(family: number, cmd: number, attrs: readonly NlAttr[] | Uint8Array = [], options: GenlRequestOptions = {}): Promise<GenlMessage[]> {
    const expect = options.expect ?? 'ack';
    const flags = NLM_F_REQUEST | (expect === 'ack' ? NLM_F_ACK : 0) | (options.flags ?? 0);
    return this.transact(
      expect,
      options.timeoutMs,
      (seq) => encodeGenlmsg({ family, cmd, version: options.version ?? 1, flags, seq }, attrs),
      undefined,
      options.wipe ?? false,
    );
  }

  /** A dump: resolves with every message up to NLMSG_DONE. */
  dump(family: number, cmd: number, attrs: readonly NlAttr[] | Uint8Array = [], options: Omit<GenlRequestOptions, 'expect'> = {}): Promise<GenlMessage[]> {
    const flags = NLM_F_REQUEST | NLM_F_DUMP | (options.flags ?? 0);
    return this.transact('dump', options.timeoutMs, (seq) =>
      encodeGenlmsg({ family, cmd, version: options.version ?? 1, flags, seq }, attrs));
  }

  /**
   * Sends arbitrary bytes (fuzzing, malformed messages) and tracks the
   * nlmsg_seq found in them like a request. The caller picks the seq, e.g.
   * with nextSeq(); bytes too short to carry one are refused.
   */
  requestRaw(bytes: Uint8Array, options: Pick<GenlRequestOptions, 'expect' | 'timeoutMs'> = {}): Promise<GenlMessage[]> {
    let seq: number;
    try {
      seq = decodeNlmsgHeader(bytes).seq;
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.pending.has(seq)) return Promise.reject(new Error(`seq ${seq} is already in flight`));
    return this.transact(options.expect ?? 'ack', options.timeoutMs, () => bytes, seq);
  }

  /** Sends arbitrary bytes, untracked; answers go to onUnsolicited(). Returns the bytes sent. */
  sendRaw(bytes: Uint8Array): number {
    if (this.isClosed) throw NetlinkError.closed();
    try {
      return this.native.send(bytes);
    } catch (error) {
      throw fromNative(error);
    }
  }

  /** Messages that answer no request in flight. Returns an unsubscribe function. */
  onUnsolicited(handler: (message: NlMessage) => void): () => void {
    this.unsolicitedHandlers.add(handler);
    return () => this.unsolicitedHandlers.delete(handler);
  }

  /** Receive-side errors (ENOBUFS overruns, malformed datagrams); counted either way. */
  onReceiveError(handler: (error: Error) => void): () => void {
    this.errorHandlers.add(handler);
    return () => this.errorHandlers.delete(handler);
  }

  /** Closes the socket; every request in flight fails with ECLOSED. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.native.close();
    for (const [seq, entry] of [...this.pending]) this.finish(seq, entry, NetlinkError.closed());
  }

  private transact(
    mode: PendingMode,
    timeoutMs: number | undefined,
    build: (seq: number) => Uint8Array,
    fixedSeq?: number,
    wipe = false,
  ): Promise<GenlMessage[]> {
    if (this.isClosed) return Promise.reject(NetlinkError.closed());
    const seq = fixedSeq ?? this.nextSeq();
    let bytes: Uint8Array;
    try {
      bytes = build(seq);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<GenlMessage[]>((resolve, reject) => {
      const entry: Pending = { mode, replies: [], resolve, reject, timer: undefined, interrupted: false };
      this.pending.set(seq, entry);
      if (this.pending.size === 1 && this.options.keepAlive === 'while-pending') this.native.ref();
      try {
        this.native.send(bytes); // sendmsg: the kernel has its own copy when this returns
      } catch (error) {
        this.finish(seq, entry, fromNative(error) as Error);
        return;
      } finally {
        if (wipe) bytes.fill(0);
      }
      if (mode === 'nothing') {
        setImmediate(() => setImmediate(() => this.finish(seq, entry)));
        return;
      }
      const ms = timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (ms > 0 && Number.isFinite(ms) && this.pending.get(seq) === entry) {
        entry.timer = setTimeout(() => this.finish(seq, entry, NetlinkError.timeout(ms)), ms);
        entry.timer.unref(); // liveness is the socket's business (keepAlive)
      }
    });
  }

  private finish(seq: number, entry: Pending, error?: Error): void {
    if (this.pending.get(seq) !== entry) return;
    this.pending.delete(seq);
    if (entry.timer) clearTimeout(entry.timer);
    if (this.pending.size === 0 && this.options.keepAlive === 'while-pending' && !this.isClosed) this.native.unref();
    if (error) entry.reject(error);
    else entry.resolve(entry.replies);
  }

  private readonly onDatagram: DatagramCallback = (error, datagram, senderPortId) => {
    if (error) {
      this.stats.receiveErrors++;
      if (error.code === 'ENOBUFS') this.stats.overruns++;
      this.reportError(error);
      return;
    }
    if (!datagram) return;
    // Only the kernel speaks to us; a user-space peer with CAP_NET_ADMIN
    // could otherwise forge answers.
    if (senderPortId !== undefined && senderPortId !== 0) {
      this.stats.foreign++;
      return;
    }
    let messages: NlMessage[];
    try {
      messages = decodeNlmsgs(datagram);
    } catch (decodeError) {
      this.stats.malformed++;
      this.reportError(decodeError as Error);
      return;
    }
    for (const message of messages) {
      if (this.isClosed) return;
      this.dispatch(message);
    }
  };

  private reportError(error: NativeSocketError | Error): void {
    for (const handler of this.errorHandlers) handler(error);
  }

  private dispatch(message: NlMessage): void {
    const entry = this.options.isUnsolicited?.(message) ? undefined : this.pending.get(message.seq);
    if (!entry) {
      this.stats.unsolicited++;
      for (const handler of this.unsolicitedHandlers) handler(message);
      return;
    }
    try {
      this.answer(message, entry);
    } catch (error) {
      // A malformed answer fails its request rather than the socket.
      this.finish(message.seq, entry, error instanceof NetlinkFormatError ? error : new NetlinkFormatError(String(error)));
    }
  }

  private answer(message: NlMessage, entry: Pending): void {
    const seq = message.seq;
    if (message.type === NLMSG_ERROR) {
      const { error, extack } = decodeNlmsgErr(message);
      this.finish(seq, entry, error === 0 ? undefined : new NetlinkError(-error, extack));
    } else if (message.type === NLMSG_DONE) {
      const { error, extack } = decodeDone(message);
      if (error !== 0) this.finish(seq, entry, new NetlinkError(-error, extack));
      else if (entry.interrupted) this.finish(seq, entry, new NetlinkError(4, { message: 'dump interrupted by a concurrent change; retry' }));
      else this.finish(seq, entry);
    } else if (message.type >= NLMSG_MIN_TYPE) {
      entry.replies.push(decodeGenlmsg(message));
      if ((message.flags & NLM_F_DUMP_INTR) !== 0) entry.interrupted = true;
      if (entry.mode === 'reply') this.finish(seq, entry);
    }
    // NLMSG_NOOP and NLMSG_OVERRUN carry nothing to act on.
  }
}
