/**
 * Netlink attributes (struct nlattr TLVs): encoders that produce aligned
 * bytes, and a strict decoder that never reads past what it was given.
 *
 *   u16 nla_len (header + payload, without padding) | u16 nla_type | payload | pad to 4
 */
import { NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN, NLA_TYPE_MASK } from './constants.js';
import { HOST_LITTLE_ENDIAN, NetlinkFormatError, align4, viewOf } from './bytes.js';

/** An attribute ready to be encoded. */
export interface NlAttr {
  readonly type: number;
  readonly nested: boolean;
  readonly payload: Uint8Array;
}

const MAX_PAYLOAD = 0xffff - NLA_HDRLEN;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function checkType(type: number): void {
  if (!Number.isInteger(type) || type < 0 || type > NLA_TYPE_MASK) {
    throw new RangeError(`attribute type must be an integer from 0 to ${NLA_TYPE_MASK}, got ${type}`);
  }
}

function checkUint(value: number, bits: 8 | 16 | 32): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new RangeError(`u${bits} attribute value out of range: ${value}`);
  }
}

function make(type: number, payload: Uint8Array, nested = false): NlAttr {
  checkType(type);
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`attribute ${type}: payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  return { type, nested, payload };
}

function scalar(type: number, size: number, write: (view: DataView) => void): NlAttr {
  const payload = new Uint8Array(size);
  write(viewOf(payload));
  return make(type, payload);
}

/** Attribute constructors. Integers are in host byte order. */
export const attr = {
  u8: (type: number, value: number): NlAttr => (checkUint(value, 8), make(type, Uint8Array.of(value))),
  u16: (type: number, value: number): NlAttr =>
    (checkUint(value, 16), scalar(type, 2, (v) => v.setUint16(0, value, HOST_LITTLE_ENDIAN))),
  u32: (type: number, value: number): NlAttr =>
    (checkUint(value, 32), scalar(type, 4, (v) => v.setUint32(0, value, HOST_LITTLE_ENDIAN))),
  u64: (type: number, value: bigint): NlAttr => {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`u64 attribute value out of range: ${value}`);
    return scalar(type, 8, (v) => v.setBigUint64(0, value, HOST_LITTLE_ENDIAN));
  },
  /** NUL-terminated UTF-8, as nla_put_string writes it. */
  string: (type: number, value: string): NlAttr => {
    if (value.includes('\0')) throw new RangeError(`string attribute ${type} contains a NUL character`);
    const bytes = utf8.encode(value);
    const payload = new Uint8Array(bytes.length + 1);
    payload.set(bytes);
    return make(type, payload);
  },
  binary: (type: number, value: Uint8Array): NlAttr => make(type, value),
  /** A flag: present means true, no payload. */
  flag: (type: number): NlAttr => make(type, new Uint8Array(0)),
  /** A nest of attributes; NLA_F_NESTED is set on the type, as the kernel expects. */
  nested: (type: number, children: readonly NlAttr[]): NlAttr => make(type, encodeAttrs(children), true),
};

/** Encoded size of `attrs`, padding included. */
export function attrsLength(attrs: readonly NlAttr[]): number {
  let total = 0;
  for (const a of attrs) total += align4(NLA_HDRLEN + a.payload.length);
  return total;
}

/** Writes `attrs` back to back, each padded to 4 bytes with zeros. */
export function encodeAttrs(attrs: readonly NlAttr[]): Uint8Array {
  const out = new Uint8Array(attrsLength(attrs));
  const view = viewOf(out);
  let offset = 0;
  for (const a of attrs) {
    view.setUint16(offset, NLA_HDRLEN + a.payload.length, HOST_LITTLE_ENDIAN);
    view.setUint16(offset + 2, a.type | (a.nested ? NLA_F_NESTED : 0), HOST_LITTLE_ENDIAN);
    out.set(a.payload, offset + NLA_HDRLEN);
    offset += align4(NLA_HDRLEN + a.payload.length);
  }
  return out;
}

/** One attribute as received; `payload` is a view into the received bytes. */
export interface DecodedAttr {
  readonly type: number;
  readonly nested: boolean;
  readonly netByteOrder: boolean;
  readonly payload: Uint8Array;
}

/**
 * Splits a run of attributes. Rejects a header that does not fit, a length
 * below the header size or past the end; tolerates only the missing padding
 * of the last attribute.
 */
export function decodeAttrs(bytes: Uint8Array): DecodedAttr[] {
  const view = viewOf(bytes);
  const out: DecodedAttr[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < NLA_HDRLEN) {
      throw new NetlinkFormatError(`attribute at offset ${offset}: ${bytes.length - offset} bytes left, header needs ${NLA_HDRLEN}`);
    }
    const len = view.getUint16(offset, HOST_LITTLE_ENDIAN);
    const rawType = view.getUint16(offset + 2, HOST_LITTLE_ENDIAN);
    if (len < NLA_HDRLEN) throw new NetlinkFormatError(`attribute at offset ${offset}: nla_len ${len} is shorter than its header`);
    if (len > bytes.length - offset) {
      throw new NetlinkFormatError(`attribute at offset ${offset}: nla_len ${len} runs past the end (${bytes.length - offset} bytes left)`);
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      netByteOrder: (rawType & NLA_F_NET_BYTEORDER) !== 0,
      payload: bytes.subarray(offset + NLA_HDRLEN, offset + len),
    });
    offset += align4(len);
  }
  return out;
}

function expectLength(a: DecodedAttr, size: number, what: string): DataView {
  if (a.payload.length !== size) {
    throw new NetlinkFormatError(`attribute ${a.type}: ${what} needs ${size} bytes, got ${a.payload.length}`);
  }
  return viewOf(a.payload);
}

/** Scalar readers; each checks the exact payload length. */
export const read = {
  u8: (a: DecodedAttr): number => expectLength(a, 1, 'u8').getUint8(0),
  u16: (a: DecodedAttr): number => expectLength(a, 2, 'u16').getUint16(0, !a.netByteOrder && HOST_LITTLE_ENDIAN),
  u32: (a: DecodedAttr): number => expectLength(a, 4, 'u32').getUint32(0, !a.netByteOrder && HOST_LITTLE_ENDIAN),
  s32: (a: DecodedAttr): number => expectLength(a, 4, 's32').getInt32(0, !a.netByteOrder && HOST_LITTLE_ENDIAN),
  u64: (a: DecodedAttr): bigint => expectLength(a, 8, 'u64').getBigUint64(0, !a.netByteOrder && HOST_LITTLE_ENDIAN),
  s64: (a: DecodedAttr): bigint => expectLength(a, 8, 's64').getBigInt64(0, !a.netByteOrder && HOST_LITTLE_ENDIAN),
  /** A NUL-terminated UTF-8 string; the terminator is required. */
  string: (a: DecodedAttr): string => {
    const end = a.payload.indexOf(0);
    if (end < 0) throw new NetlinkFormatError(`attribute ${a.type}: string is not NUL-terminated`);
    try {
      return utf8Strict.decode(a.payload.subarray(0, end));
    } catch {
      throw new NetlinkFormatError(`attribute ${a.type}: string is not valid UTF-8`);
    }
  },
};

/**
 * Attributes by type, for reading a message. A repeated type keeps the last
 * one, as the kernel's nla_parse does; `all()` returns every occurrence.
 */
export class AttrSet {
  private readonly byType = new Map<number, DecodedAttr>();

  constructor(readonly list: readonly DecodedAttr[]) {
    for (const a of list) this.byType.set(a.type, a);
  }

  static decode(bytes: Uint8Array): AttrSet {
    return new AttrSet(decodeAttrs(bytes));
  }

  has(type: number): boolean {
    return this.byType.has(type);
  }
  get(type: number): DecodedAttr | undefined {
    return this.byType.get(type);
  }
  all(type: number): DecodedAttr[] {
    return this.list.filter((a) => a.type === type);
  }

  u8(type: number): number | undefined {
    return this.map(type, read.u8);
  }
  u16(type: number): number | undefined {
    return this.map(type, read.u16);
  }
  u32(type: number): number | undefined {
    return this.map(type, read.u32);
  }
  s32(type: number): number | undefined {
    return this.map(type, read.s32);
  }
  u64(type: number): bigint | undefined {
    return this.map(type, read.u64);
  }
  s64(type: number): bigint | undefined {
    return this.map(type, read.s64);
  }
  string(type: number): string | undefined {
    return this.map(type, read.string);
  }
  binary(type: number): Uint8Array | undefined {
    return this.byType.get(type)?.payload;
  }
  flag(type: number): boolean {
    return this.byType.has(type);
  }
  nested(type: number): AttrSet | undefined {
    return this.map(type, (a) => AttrSet.decode(a.payload));
  }

  private map<T>(type: number, fn: (a: DecodedAttr) => T): T | undefined {
    const a = this.byType.get(type);
    return a === undefined ? undefined : fn(a);
  }
}

/** `value`, or a NetlinkFormatError naming what is missing. */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new NetlinkFormatError(`missing attribute: ${what}`);
  return value;
}
