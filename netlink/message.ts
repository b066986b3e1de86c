/**
 * struct nlmsghdr framing: one message out, any number of messages in from
 * one datagram.
 *
 *   u32 nlmsg_len (header + payload) | u16 nlmsg_type | u16 nlmsg_flags | u32 nlmsg_seq | u32 nlmsg_pid
 */
import { NLMSG_HDRLEN } from './constants.js';
import { HOST_LITTLE_ENDIAN, NetlinkFormatError, align4, viewOf } from './bytes.js';

export interface NlMsgHeader {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  /** nlmsg_pid: the sender's port id (0 from the kernel) or, in replies, ours. */
  readonly portid: number;
}

export interface NlMessage extends NlMsgHeader {
  /** Everything after the 16-byte header, up to nlmsg_len; a view into the datagram. */
  readonly payload: Uint8Array;
}

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`nlmsghdr ${name} out of range: ${value}`);
}

/** One message: header, payload, zero padding to 4 bytes. */
export function encodeNlmsg(header: NlMsgHeader, payload: Uint8Array): Uint8Array {
  checkField('type', header.type, 0xffff);
  checkField('flags', header.flags, 0xffff);
  checkField('seq', header.seq, 0xffff_ffff);
  checkField('portid', header.portid, 0xffff_ffff);
  const len = NLMSG_HDRLEN + payload.length;
  if (len > 0xffff_ffff) throw new RangeError(`message of ${len} bytes is too long`);
  const out = new Uint8Array(align4(len));
  const view = viewOf(out);
  view.setUint32(0, len, HOST_LITTLE_ENDIAN);
  view.setUint16(4, header.type, HOST_LITTLE_ENDIAN);
  view.setUint16(6, header.flags, HOST_LITTLE_ENDIAN);
  view.setUint32(8, header.seq, HOST_LITTLE_ENDIAN);
  view.setUint32(12, header.portid, HOST_LITTLE_ENDIAN);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Reads the header at `offset` and returns it with its nlmsg_len. */
export function decodeNlmsgHeader(bytes: Uint8Array, offset = 0): NlMsgHeader & { readonly length: number } {
  if (bytes.length - offset < NLMSG_HDRLEN) {
    throw new NetlinkFormatError(`message at offset ${offset}: ${bytes.length - offset} bytes left, header needs ${NLMSG_HDRLEN}`);
  }
  const view = viewOf(bytes);
  return {
    length: view.getUint32(offset, HOST_LITTLE_ENDIAN),
    type: view.getUint16(offset + 4, HOST_LITTLE_ENDIAN),
    flags: view.getUint16(offset + 6, HOST_LITTLE_ENDIAN),
    seq: view.getUint32(offset + 8, HOST_LITTLE_ENDIAN),
    portid: view.getUint32(offset + 12, HOST_LITTLE_ENDIAN),
  };
}

/**
 * Splits a datagram into its messages. Rejects a truncated header, an
 * nlmsg_len below the header size or past the end of the datagram; tolerates
 * only the missing padding of the last message.
 */
export function decodeNlmsgs(datagram: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    const { length, type, flags, seq, portid } = decodeNlmsgHeader(datagram, offset);
    if (length < NLMSG_HDRLEN) throw new NetlinkFormatError(`message at offset ${offset}: nlmsg_len ${length} is shorter than its header`);
    if (length > datagram.length - offset) {
      throw new NetlinkFormatError(`message at offset ${offset}: nlmsg_len ${length} runs past the end (${datagram.length - offset} bytes left)`);
    }
    out.push({ type, flags, seq, portid, payload: datagram.subarray(offset + NLMSG_HDRLEN, offset + length) });
    offset += align4(length);
  }
  if (out.length === 0) throw new NetlinkFormatError('empty datagram');
  return out;
}
