/**
 * What every key type shares: the loaded form of a key, the row interface of
 * the key-type table, and the PKCS#8 helpers.
 *
 * Stored material is PKCS#8 DER for key pairs and the raw bytes for secret
 * keys; it only ever exists in the clear inside the server process.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { KeyTypeName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import type { UsageMask } from './usages.js';

/** A key ready for use: node:crypto KeyObjects, cached per session. */
export interface LoadedKey {
  readonly privateKey?: KeyObject;
  readonly publicKey?: KeyObject;
  readonly secretKey?: KeyObject;
}

export interface KeyTypeSpec {
  readonly type: number;
  readonly name: KeyTypeName;
  readonly kind: 'key-pair' | 'secret';
  readonly allowedUsages: UsageMask;
  readonly defaultUsages: UsageMask;
  /** Algorithms used when a request leaves them unspecified. */
  readonly defaultSignature?: number;
  readonly defaultMac?: number;
  readonly defaultEncryption?: number;
  /** Secret keys: the length a KDF produces when the request gives none. */
  readonly defaultLengthBytes?: number;
  /** Fresh material; `lengthBytes` 0 means the default. Caller zeroes the result. */
  generate(lengthBytes: number): Promise<Buffer>;
  /** Checks imported material and returns it normalised. Caller zeroes the result. */
  importMaterial(format: number, data: Uint8Array): Buffer;
  load(material: Buffer): LoadedKey;
  /** Plain export, only ever called for extractable keys. Caller zeroes the result. */
  exportMaterial(key: LoadedKey, format: number): Buffer;
  /** length_bytes shown in key info: the secret's length, or 0 for key pairs. */
  lengthOf(material: Buffer): number;
}

/** Limits on import sizes (an RSA-4096 PKCS#8 is about 2.4 KiB). */
export const MAX_KEY_DATA_BYTES = 8 * 1024;

export const invalid = (message: string): VhsmFailure => new VhsmFailure('INVALID_ARGUMENT', message);

export function parsePkcs8(data: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(data), format: 'der', type: 'pkcs8' });
  } catch {
    throw invalid('key_data is not a PKCS#8 DER private key');
  }
}

export function pkcs8Of(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'pkcs8' });
}

export function loadPrivate(material: Buffer): LoadedKey {
  const privateKey = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

const PROBE = Buffer.from('vhsm pairwise consistency test');

/**
 * Pairwise consistency test for an imported private key: a PKCS#8 blob may
 * carry a public key that does not belong to its private part, or broken
 * RSA parameters. Signs and verifies a probe (X25519: agrees both ways).
 */
export function checkKeyPair(privateKey: KeyObject): void {
  const publicKey = createPublicKey(privateKey);
  let consistent: boolean;
  try {
    if (privateKey.asymmetricKeyType === 'x25519') {
      const other = generateKeyPairSync('x25519');
      const ours = diffieHellman({ privateKey, publicKey: other.publicKey });
      const theirs = diffieHellman({ privateKey: other.privateKey, publicKey });
      consistent = ours.equals(theirs);
      ours.fill(0);
      theirs.fill(0);
    } else {
      const digest = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
      consistent = verify(digest, PROBE, publicKey, sign(digest, PROBE, privateKey));
    }
  } catch {
    consistent = false;
  }
  if (!consistent) throw invalid('key_data fails the pairwise consistency check');
}

/** A loaded key with its type: what mechanisms operate on (a session's CachedKey is one). */
export interface KeyRef {
  readonly keyType: number;
  readonly loaded: LoadedKey;
}

export function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`loaded key has no ${what}`);
  return value;
}
