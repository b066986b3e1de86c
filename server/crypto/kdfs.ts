/**
 * Key derivation functions: HKDF-SHA256 (RFC 5869) through node:crypto.
 */
import { hkdfSync, type KeyObject } from 'node:crypto';
import { KDF_ALGORITHMS, type KdfAlgorithmName } from '../../proto/index.js';

export interface KdfMechanism {
  readonly algorithm: number;
  readonly name: KdfAlgorithmName;
  readonly maxOutputBytes: number;
  /** `length` bytes of output keying material; the caller zeroes it. */
  derive(ikm: KeyObject | Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer;
}

const hkdfSha256: KdfMechanism = {
  algorithm: KDF_ALGORITHMS['hkdf-sha256'],
  name: 'hkdf-sha256',
  maxOutputBytes: 255 * 32,
  derive: (ikm, salt, info, length) => Buffer.from(hkdfSync('sha256', ikm, salt, info, length)), // a view: zeroing it zeroes the output
};

const KDF_TABLE: ReadonlyMap<number, KdfMechanism> = new Map([hkdfSha256].map((row) => [row.algorithm, row]));

export function kdfMechanism(algorithm: number): KdfMechanism | undefined {
  return KDF_TABLE.get(algorithm);
}
