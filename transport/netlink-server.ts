/**
 * Server transport over vhsm_transport.ko: registers as the VHSM server,
 * receives DELIVER messages (requests stamped by the kernel) and answers each
 * with REPLY{REQ_ID, PAYLOAD}.
 */
import { attr } from '../netlink/attributes.js';
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
  VHSM_A_REQ_ID,
  VHSM_A_UID,
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
  /** Receive queue overruns (ENOBUFS): DELIVERs the kernel dropped; their clients get ETIMEDOUT. */
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
      uid: requiredAttr(a.u32(VHSM_A_UID), 'UID'),
      gid: requiredAttr(a.u32(VHSM_A_GID), 'GID'),
    },
    payload: a.binary(VHSM_A_PAYLOAD) ?? new Uint8Array(0),
  };
}

export async function registerNetlinkServer(options: NetlinkServerOptions = {}): Promise<NetlinkServerTransport> {
  const timeoutMs = options.timeoutMs ?? 5000;
  let familyId: number | undefined;
  // DELIVERs carry the kernel's own seq, which may equal one of ours:
  // recognise them by command before matching by seq.
  const isDeliver = (m: NlMessage): boolean => m.type === familyId && genlCmdOf(m) === VHSM_CMD_DELIVER;
  const { socket, family } = await openVhsmSocket({
    recvBufferBytes: options.recvBufferBytes ?? DEFAULT_RECV_BUFFER,
    timeoutMs,
    keepAlive: 'always',
    isUnsolicited: isDeliver,
    ...(options.factory ? { factory: options.factory } : {}),
  });
  familyId = family.id;

  let handler: ((request: StampedRequest) => void) | undefined;
  const early: StampedRequest[] = [];
  let malformed = 0;
  let closing: Promise<void> | undefined;
  let stopped = false;

  socket.onUnsolicited((message) => {
    if (stopped || !isDeliver(message)) return; // stopped, or a late answer to a timed-out request
    let request: StampedRequest;
    try {
      request = decodeDeliver(decodeGenlmsg(message));
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

    listen(onRequest: (request: StampedRequest) => void): void {
      if (handler) throw new Error('listen() was already called');
      if (stopped) throw new TransportError('ECLOSED', 'ECLOSED: the server transport is closed');
      handler = onRequest;
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
