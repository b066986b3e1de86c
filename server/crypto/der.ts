/**
 * Just enough DER to take EC keys apart and put a SEC1 private key
 * together: node:crypto exports and imports the containers, this reads the
 * two fields it does not expose as bytes (the private scalar and the public
 * point). Malformed input throws RangeError.
 */
export interface Tlv {
  readonly tag: number;
  /** Content is bytes [start, end). */
  readonly start: number;
  readonly end: number;
}

export function readTlv(der: Uint8Array, offset: number): Tlv {
  if (offset + 2 > der.length) throw new RangeError('DER: truncated');
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 3 || start + count > der.length) throw new RangeError('DER: bad length');
    length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | der[start + i]!;
    start += count;
  }
  const end = start + length;
  if (end > der.length) throw new RangeError('DER: truncated');
  return { tag, start, end };
}

/** The elements of a constructed value (SEQUENCE or [n]). */
export function childrenOf(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = readTlv(der, offset);
    out.push(child);
    offset = child.end;
  }
  return out;
}

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;
const BIT_STRING = 0x03;

/** The private scalar of an RFC 5915 ECPrivateKey (`type: 'sec1'` export), copied. */
export function scalarFromSec1(sec1: Uint8Array): Buffer {
  const outer = readTlv(sec1, 0);
  const [, privateKey] = childrenOf(sec1, outer);
  if (outer.tag !== SEQUENCE || !privateKey || privateKey.tag !== OCTET_STRING) throw new RangeError('DER: not an ECPrivateKey');
  return Buffer.from(sec1.subarray(privateKey.start, privateKey.end));
}

/** The subjectPublicKey bytes of an SPKI (the EC point, or the raw key for OKP types). */
export function keyBytesFromSpki(spki: Uint8Array): Buffer {
  const outer = readTlv(spki, 0);
  const [, bits] = childrenOf(spki, outer);
  if (outer.tag !== SEQUENCE || !bits || bits.tag !== BIT_STRING || spki[bits.start] !== 0) throw new RangeError('DER: not an SPKI');
  return Buffer.from(spki.subarray(bits.start + 1, bits.end));
}

/**
 * An RFC 5915 ECPrivateKey holding only the scalar and the curve OID; OpenSSL
 * computes the public point when it loads it. All lengths here are < 128.
 */
export function sec1FromScalar(scalar: Uint8Array, curveOid: Uint8Array): Buffer {
  const params = Buffer.concat([Buffer.of(0xa0, curveOid.length), curveOid]);
  const body = Buffer.concat([Buffer.of(0x02, 0x01, 0x01, OCTET_STRING, scalar.length), scalar, params]);
  const out = Buffer.concat([Buffer.of(SEQUENCE, body.length), body]);
  body.fill(0);
  return out;
}
