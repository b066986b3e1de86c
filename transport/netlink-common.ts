/**
 * What the three vhsm netlink transports share: opening a socket on the
 * "vhsm" family and turning every failure into a TransportError.
 */
import { isNativeSocketError } from '../netlink/addon.js';
import { NetlinkFormatError } from '../netlink/bytes.js';
import { resolveFamily, type GenlFamily } from '../netlink/ctrl.js';
import { errnoDescription, errnoName } from '../netlink/errno.js';
import { NetlinkError } from '../netlink/errors.js';
import { GenlSocket, type GenlSocketOptions } from '../netlink/genl-socket.js';
import { VHSM_GENL_NAME, VHSM_GENL_VERSION } from '../netlink/vhsm-uapi.js';
import { TransportError, type TransportErrorCode } from './types.js';

const TRANSPORT_CODES: Readonly<Record<TransportErrorCode, true>> = {
  EACCES: true, ECONNREFUSED: true, EMSGSIZE: true, EAGAIN: true, ENOBUFS: true, ETIMEDOUT: true,
  ECONNRESET: true, EPERM: true, EBUSY: true, ENOENT: true, EINVAL: true, ECLOSED: true, EIO: true,
};

/** What each errno means on this transport, when the kernel gave no message. */
const MEANING: Readonly<Partial<Record<string, string>>> = {
  EACCES: "this container's network namespace is not bound to a CTID",
  ECONNREFUSED: 'no VHSM server is registered',
  EMSGSIZE: 'payload larger than VHSM_PAYLOAD_MAX',
  EAGAIN: 'the VHSM server queue is full',
  ENOBUFS: "this container's quota of pending requests is used up",
  ETIMEDOUT: 'the VHSM server did not answer before the kernel deadline',
  ECONNRESET: 'the VHSM server went away with the request pending',
  EBUSY: 'another VHSM server is registered',
};

/** The stable code for an errno name; names outside the contract become EIO. */
export function transportCode(name: string): TransportErrorCode {
  return Object.hasOwn(TRANSPORT_CODES, name) ? (name as TransportErrorCode) : 'EIO';
}

/** A positive errno that the kernel reported (RESPONSE STATUS or NLMSG_ERROR). */
export function errnoError(errno: number, detail?: string): TransportError {
  const name = errnoName(errno);
  return new TransportError(transportCode(name), `${name}: ${detail ?? MEANING[name] ?? errnoDescription(errno)}`, errno);
}

export function toTransportError(error: unknown): TransportError {
  if (error instanceof TransportError) return error;
  if (error instanceof NetlinkError) {
    if (error.origin === 'local') return new TransportError(transportCode(error.code), error.message, error.errno || undefined);
    return errnoError(error.errno, error.extack.message);
  }
  if (error instanceof NetlinkFormatError) return new TransportError('EIO', `malformed message from the kernel: ${error.message}`);
  if (isNativeSocketError(error)) return new TransportError(transportCode(error.code), error.message, -error.errno);
  return new TransportError('EIO', error instanceof Error ? error.message : String(error));
}

export interface VhsmSocket {
  readonly socket: GenlSocket;
  readonly family: GenlFamily;
}

/**
 * A generic netlink socket with the "vhsm" family resolved. A missing family
 * is TransportError ENOENT 'vhsm_transport module not loaded'.
 */
export async function openVhsmSocket(options: GenlSocketOptions): Promise<VhsmSocket> {
  let socket: GenlSocket;
  try {
    socket = GenlSocket.open(options);
  } catch (error) {
    throw toTransportError(error);
  }
  try {
    const family = await resolveFamily(socket, VHSM_GENL_NAME);
    if (family.version !== VHSM_GENL_VERSION) {
      throw new TransportError('EIO', `the vhsm family speaks version ${family.version}, this build speaks ${VHSM_GENL_VERSION}`);
    }
    return { socket, family };
  } catch (error) {
    socket.close();
    if (error instanceof NetlinkError && error.code === 'ENOENT') {
      throw new TransportError('ENOENT', 'vhsm_transport module not loaded', error.errno);
    }
    throw toTransportError(error);
  }
}
