/**
 * Signature mechanisms: one row per SignatureAlgorithm, defined in sig-*.ts.
 */
import type { SignatureAlgorithmName } from '../../proto/index.js';
import type { KeyRef } from './key-material.js';
import { ECDSA_MECHANISMS, ecdsaDigest } from './sig-ecdsa.js';
import { RSA_MECHANISMS, rsaPkcs1Raw } from './sig-rsa.js';
import { bip340, ed25519 } from './sig-schnorr.js';

export interface SignOptions {
  /** SignatureEncoding: ECDSA only (DER or r || s); the other schemes have one encoding. */
  readonly encoding: number;
  /** `data` is a digest of exactly `prehashBytes` bytes (the handler checks the length). */
  readonly prehashed: boolean;
}

export interface SignatureMechanism {
  readonly algorithm: number;
  readonly name: SignatureAlgorithmName;
  readonly keyTypes: ReadonlySet<number>;
  /** Digest length accepted as prehashed input; undefined: messages only. */
  readonly prehashBytes?: number;
  /**
   * Lengths `data` may have, for mechanisms that take it as given rather
   * than hash it (a digest, a DigestInfo); undefined: any message.
   */
  dataBytes?(key: KeyRef): { readonly min: number; readonly max: number };
  sign(key: KeyRef, data: Uint8Array, options: SignOptions): Promise<Uint8Array>;
  /** False for any signature that does not verify, malformed ones included. */
  verify(key: KeyRef, data: Uint8Array, signature: Uint8Array, options: SignOptions): Promise<boolean>;
}

/** Largest signature accepted by verify (RSA-4096 is 512 bytes). */
export const MAX_SIGNATURE_BYTES = 512;

const SIGNATURE_TABLE: ReadonlyMap<number, SignatureMechanism> = new Map(
  [...ECDSA_MECHANISMS, ed25519, ...RSA_MECHANISMS, bip340, ecdsaDigest, rsaPkcs1Raw].map((row) => [row.algorithm, row]),
);

export function signatureMechanism(algorithm: number): SignatureMechanism | undefined {
  return SIGNATURE_TABLE.get(algorithm);
}
