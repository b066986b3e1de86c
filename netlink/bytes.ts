/** Byte-level helpers shared by the netlink codecs. */
import { endianness } from 'node:os';

/** Netlink integers are in host byte order (little-endian on x86). */
export const HOST_LITTLE_ENDIAN = endianness() === 'LE';

/** Rounds up to netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN). */
export function align4(length: number): number {
  return (length + 3) & ~3;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Concatenates chunks into one new array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Thrown when bytes are not a well-formed netlink message or attribute. */
export class NetlinkFormatError extends Error {
  override readonly name = 'NetlinkFormatError';
  readonly code = 'EBADMSG';
}
