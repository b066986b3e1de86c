/**
 * Server transport over vhsm_transport.ko: registers as the VHSM server,
 * receives DELIVER messages (requests stamped by the kernel) and answers each
 * with REPLY{REQ_ID, PAYLOAD}; CANCEL messages name delivered requests whose
 * client went away.
 */
import { attr, read } from '../netlink/attributes.js';
import type { NetlinkSocketFactory } from '../netlink/addon.js';
import { NetlinkFormatError } from '../netlink/bytes.js';
import { decodeGenlmsg, genlCmdOf, type GenlMessage } from '../netlink/genl.js';
import type { NlMessage } from '../netlink/message.js';
import {
  VHSM_A_CTID,
  VHSM_A_GID,
  VHSM_A_NETNS_COOKIE,
  VHSM_A_PAYLOAD,
  VHSM_A_PID,
  VHSM_A_PROC_START,
  VHSM_A_REQ_ID,
  VHSM_A_UID,
  VHSM_CMD_CANCEL,
  VHSM_CMD_DELIVER,
  VHSM_CMD_REPLY,
  VHSM_CMD_SERVER_REGISTER,
  VHSM_CMD_SERVER_UNREGISTER,
  VHSM_GENL_VERSION,
  VHSM_PAYLOAD_MAX,
} from '../netlink/vhsm-uapi.js';
import { TransportError, type ServerTransport, type StampedRequest } from './types.js';
import { openVhsmSocket, toTransportError } from './netlink-common.js';

export interface NetlinkServerOptions {
  /** Receive buffer to ask for; default 16 MiB (capped at net.core.rmem_max without CAP_NET_ADMIN in the initial user namespace). */
  readonly recvBufferBytes?: number;
  /** Ask the kernel to acknowledge every REPLY (one more message each); default false. */
  readonly replyAck?: boolean;
  /** Deadline for REGISTER/UNREGISTER and acknowledged replies; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Socket factory; tests inject a fake. */
  readonly factory?: NetlinkSocketFactory;
}

export interface NetlinkServerTransport extends ServerTransport {
  readonly familyId: number;
  readonly portid: number;
  /**
   * Receive queue overruns reported by the socket (ENOBUFS). The module
   * queues DELIVERs itself and refuses one that does not fit to its client
   * (EAGAIN), and the socket is set NETLINK_NO_ENOBUFS, so this stays 0
   * unless something else (an ACK) overran the queue.
   */
  readonly overruns: number;
  /** DELIVER messages (or datagrams) that could not be decoded and were skipped. */
  readonly malformed: number;
}

const DEFAULT_RECV_BUFFER = 16 * 1024 * 1024;

function requiredAttr<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new NetlinkFormatError(`DELIVER without ${name}`);
  return value;
}

/** A DELIVER message as the server's StampedRequest. */
export function decodeDeliver(message: GenlMessage): StampedRequest {
  if (message.cmd !== VHSM_CMD_DELIVER) throw new NetlinkFormatError(`expected DELIVER, got command ${message.cmd}`);
  const a = message.attrs;
  return {
    requestId: requiredAttr(a.u64(VHSM_A_REQ_ID), 'REQ_ID'),
    sender: {
      ctid: requiredAttr(a.u32(VHSM_A_CTID), 'CTID'),
      netnsCookie: requiredAttr(a.u64(VHSM_A_NETNS_COOKIE), 'NETNS_COOKIE'),
      pid: requiredAttr(a.u32(VHSM_A_PID), 'PID'),
      procStart: requiredAttr(a.u64(VHSM_A_PROC_START), 'PROC_START'),
      uid: requiredAttr(a.u32(VHSM_A_UID), 'UID'),
      gid: requiredAttr(a.u32(VHSM_A_GID), 'GID'),
    },
    payload: a.binary(VHSM_A_PAYLOAD) ?? new Uint8Array(0),
  };
}

/** The request ids a CANCEL names. */
export function decodeCancel(message: GenlMessage): bigint[] {
  if (message.cmd !== VHSM_CMD_CANCEL) throw new NetlinkFormatError(`expected CANCEL, got command ${message.cmd}`);
  return message.attrs.all(VHSM_A_REQ_ID).map(read.u64);
}

export async function registerNetlinkServer(options: NetlinkServerOptions = {}): Promise<NetlinkServerTransport> {
  const timeoutMs = options.timeoutMs ?? 5000;
  let familyId: number | undefined;
  // DELIVERs and CANCELs carry the kernel's own seq, which may equal one of
  // ours: recognise them by command before matching by seq.
  const isEvent = (m: NlMessage): boolean => {
    if (m.type !== familyId) return false;
    const cmd = genlCmdOf(m);
    return cmd === VHSM_CMD_DELIVER || cmd === VHSM_CMD_CANCEL;
  };
  const { socket, family } = await openVhsmSocket({
    recvBufferBytes: options.recvBufferBytes ?? DEFAULT_RECV_BUFFER,
    timeoutMs,
    keepAlive: 'always',
    noEnobufs: true,
    isUnsolicited: isEvent,
    ...(options.factory ? { factory: options.factory } : {}),
  });
  familyId = family.id;

  let handler: ((request: StampedRequest) => void) | undefined;
  let cancelHandler: ((requestId: bigint) => void) | undefined;
  const early: StampedRequest[] = [];
  let malformed = 0;
  let closing: Promise<void> | undefined;
  let stopped = false;

  socket.onUnsolicited((message) => {
    if (stopped || !isEvent(message)) return; // stopped, or a late answer to a timed-out request
    let decoded: GenlMessage;
    try {
      decoded = decodeGenlmsg(message);
    } catch {
      malformed++;
      return;
    }
    if (decoded.cmd === VHSM_CMD_CANCEL) {
      let ids: bigint[];
      try {
        ids = decodeCancel(decoded);
      } catch {
        malformed++; // the requests are simply worked on
        return;
      }
      for (const id of ids) cancelHandler?.(id);
      return;
    }
    let request: StampedRequest;
    try {
      request = decodeDeliver(decoded);
    } catch {
      malformed++; // no REQ_ID to answer: the kernel's deadline fails it
      return;
    }
    if (handler) handler(request);
    else early.push(request);
  });

  try {
    await socket.request(family.id, VHSM_CMD_SERVER_REGISTER, [], { expect: 'ack', version: VHSM_GENL_VERSION });
  } catch (error) {
    socket.close();
    throw toTransportError(error);
  }

  return {
    familyId: family.id,
    portid: socket.portid,
    get overruns() {
      return socket.counters.overruns;
    },
    get malformed() {
      return malformed + socket.counters.malformed;
    },

    listen(onRequest: (request: StampedRequest) => void, onCancel?: (requestId: bigint) => void): void {
      if (handler) throw new Error('listen() was already called');
      if (stopped) throw new TransportError('ECLOSED', 'ECLOSED: the server transport is closed');
      handler = onRequest;
      cancelHandler = onCancel;
      for (const request of early.splice(0)) onRequest(request);
    },

    async reply(requestId: bigint, payload: Uint8Array): Promise<void> {
      if (socket.closed) throw new TransportError('ECLOSED', 'ECLOSED: the server transport is closed');
      if (payload.length > VHSM_PAYLOAD_MAX) {
        throw new TransportError('EMSGSIZE', `EMSGSIZE: reply of ${payload.length} bytes exceeds VHSM_PAYLOAD_MAX (${VHSM_PAYLOAD_MAX})`);
      }
      try {
        await socket.request(family.id, VHSM_CMD_REPLY, [attr.u64(VHSM_A_REQ_ID, requestId), attr.binary(VHSM_A_PAYLOAD, payload)], {
          expect: options.replyAck ? 'ack' : 'nothing',
          version: VHSM_GENL_VERSION,
          wipe: true, // replies carry decrypted data, exported keys, session ids
        });
      } catch (error) {
        throw toTransportError(error);
      }
    },

    close(): Promise<void> {
      closing ??= (async () => {
        stopped = true;
        try {
          await socket.request(family.id, VHSM_CMD_SERVER_UNREGISTER, [], { expect: 'ack', version: VHSM_GENL_VERSION });
        } catch {
          // Closing the socket drops the registration too (NETLINK_URELEASE).
        }
        socket.close();
      })();
      return closing;
    },
  };
}
