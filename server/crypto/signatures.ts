/**
 * Signature mechanisms: one row per algorithm. Issue 4 adds ECDSA with
 * other curves and hashes, RSA-PSS / PKCS#1 v1.5, secp256k1 and BIP-340.
 */
import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { KEY_TYPES, SIGNATURE_ALGORITHMS, SIGNATURE_ENCODINGS, type SignatureAlgorithmName } from '../../proto/index.js';
import type { LoadedKey } from './key-types.js';

export interface SignatureMechanism {
  readonly algorithm: number;
  readonly name: SignatureAlgorithmName;
  readonly keyTypes: ReadonlySet<number>;
  sign(key: LoadedKey, data: Uint8Array, encoding: number): Promise<Uint8Array>;
  verify(key: LoadedKey, data: Uint8Array, signature: Uint8Array, encoding: number): Promise<boolean>;
}

/** Largest signature accepted by verify (RSA-4096 is 512 bytes). */
export const MAX_SIGNATURE_BYTES = 512;

function dsaEncoding(encoding: number): 'der' | 'ieee-p1363' {
  return encoding === SIGNATURE_ENCODINGS.raw ? 'ieee-p1363' : 'der';
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`loaded key has no ${what}`);
  return value;
}

const ecdsaSha256: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS['ecdsa-sha256'],
  name: 'ecdsa-sha256',
  keyTypes: new Set([KEY_TYPES['ec-p256']]),
  async sign(key, data, encoding) {
    return cryptoSign('sha256', data, { key: must(key.privateKey, 'private key'), dsaEncoding: dsaEncoding(encoding) });
  },
  async verify(key, data, signature, encoding) {
    try {
      return cryptoVerify('sha256', data, { key: must(key.publicKey, 'public key'), dsaEncoding: dsaEncoding(encoding) }, signature);
    } catch {
      return false; // malformed DER and the like: simply not a valid signature
    }
  },
};

const ed25519: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS.ed25519,
  name: 'ed25519',
  keyTypes: new Set([KEY_TYPES.ed25519]),
  async sign(key, data) {
    return cryptoSign(null, data, must(key.privateKey, 'private key'));
  },
  async verify(key, data, signature) {
    try {
      return cryptoVerify(null, data, must(key.publicKey, 'public key'), signature);
    } catch {
      return false;
    }
  },
};

const SIGNATURE_TABLE: ReadonlyMap<number, SignatureMechanism> = new Map([ecdsaSha256, ed25519].map((row) => [row.algorithm, row]));

export function signatureMechanism(algorithm: number): SignatureMechanism | undefined {
  return SIGNATURE_TABLE.get(algorithm);
}
