/**
 * Client transport over vhsm_transport.ko: REQUEST{PAYLOAD} out (no ACK),
 * RESPONSE{STATUS, PAYLOAD} back, matched by the nlmsg_seq the kernel
 * echoes. Many requests may be in flight on the one socket.
 */
import { attr } from '../netlink/attributes.js';
import type { NetlinkSocketFactory } from '../netlink/addon.js';
import type { GenlMessage } from '../netlink/genl.js';
import {
  VHSM_A_PAYLOAD,
  VHSM_A_STATUS,
  VHSM_CMD_REQUEST,
  VHSM_CMD_RESPONSE,
  VHSM_GENL_VERSION,
  VHSM_PAYLOAD_MAX,
} from '../netlink/vhsm-uapi.js';
import { TransportError, type ClientTransport, type RequestOptions } from './types.js';
import { errnoError, openVhsmSocket, toTransportError } from './netlink-common.js';

export interface NetlinkClientOptions {
  /** Client-side deadline per request unless the request sets one; default 20000 ms. The kernel has its own. */
  readonly timeoutMs?: number;
  /** Socket factory; tests inject a fake. */
  readonly factory?: NetlinkSocketFactory;
}

export interface NetlinkClientTransport extends ClientTransport {
  readonly familyId: number;
  readonly portid: number;
  /** Requests awaiting their RESPONSE. */
  readonly inFlight: number;
}

/** A RESPONSE as the kernel sends it. */
export interface VhsmResponse {
  /** 0 or a positive errno. */
  readonly status: number;
  readonly payload: Uint8Array;
}

const DEFAULT_TIMEOUT_MS = 20_000;

export function decodeResponse(message: GenlMessage): VhsmResponse {
  if (message.cmd !== VHSM_CMD_RESPONSE) throw new TransportError('EIO', `expected a RESPONSE, the kernel sent command ${message.cmd}`);
  const status = message.attrs.u32(VHSM_A_STATUS);
  if (status === undefined) throw new TransportError('EIO', 'RESPONSE without STATUS');
  return { status, payload: message.attrs.binary(VHSM_A_PAYLOAD) ?? new Uint8Array(0) };
}

export async function openNetlinkClient(options: NetlinkClientOptions = {}): Promise<NetlinkClientTransport> {
  const defaultTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // A client with nothing in flight must not keep Node alive.
  const { socket, family } = await openVhsmSocket({
    keepAlive: 'while-pending',
    timeoutMs: defaultTimeoutMs,
    ...(options.factory ? { factory: options.factory } : {}),
  });

  return {
    familyId: family.id,
    portid: socket.portid,
    get inFlight() {
      return socket.inFlight;
    },

    async request(payload: Uint8Array, requestOptions?: RequestOptions): Promise<Uint8Array> {
      if (socket.closed) throw new TransportError('ECLOSED', 'ECLOSED: the client transport is closed');
      if (payload.length > VHSM_PAYLOAD_MAX) {
        throw new TransportError('EMSGSIZE', `EMSGSIZE: payload of ${payload.length} bytes exceeds VHSM_PAYLOAD_MAX (${VHSM_PAYLOAD_MAX})`);
      }
      let replies: GenlMessage[];
      try {
        replies = await socket.request(family.id, VHSM_CMD_REQUEST, [attr.binary(VHSM_A_PAYLOAD, payload)], {
          expect: 'reply',
          version: VHSM_GENL_VERSION,
          timeoutMs: requestOptions?.timeoutMs ?? defaultTimeoutMs,
        });
      } catch (error) {
        throw toTransportError(error);
      }
      const [message] = replies;
      if (!message) throw new TransportError('EIO', 'the kernel acknowledged a REQUEST without a RESPONSE');
      let response: VhsmResponse;
      try {
        response = decodeResponse(message);
      } catch (error) {
        throw toTransportError(error);
      }
      if (response.status !== 0) throw errnoError(response.status);
      return response.payload;
    },

    async close(): Promise<void> {
      socket.close();
    },
  };
}
