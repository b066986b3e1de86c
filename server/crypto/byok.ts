/**
 * Wrapped key transport (BYOK), the CKM_RSA_AES_KEY_WRAP format that Vault
 * Transit, AWS KMS (RSA_AES_KEY_WRAP_SHA_256) and GCP KMS
 * (RSA_OAEP_*_SHA256_AES_256) use:
 *
 *   RSA-OAEP(SHA-256, MGF1-SHA256, no label)(ephemeral AES key)
 *   || AES-KWP(ephemeral AES key, key material)            (RFC 5649)
 *
 * The ephemeral key is AES-256 when we wrap; 128/192/256 are accepted on
 * import. Every unwrapping failure is the same DECRYPT_FAILED, whichever
 * layer failed, so the answer is no padding oracle.
 */
import { createCipheriv, createDecipheriv, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { VhsmFailure } from '../errors.js';
import { oaepSha256Decrypt, oaepSha256Encrypt } from './ciphers.js';
import { invalid } from './key-material.js';
import { rsaModulusBytes } from './keys-rsa.js';

/** RFC 5649 alternative initial value (its high half; the low half is the length). */
const KWP_AIV = Buffer.from('a65959a6', 'hex');
const EPHEMERAL_KEY_BYTES = 32;
const KWP_MIN_BYTES = 16;

function kwpCipherName(kek: Uint8Array): 'id-aes128-wrap-pad' | 'id-aes192-wrap-pad' | 'id-aes256-wrap-pad' {
  if (kek.length === 16) return 'id-aes128-wrap-pad';
  if (kek.length === 24) return 'id-aes192-wrap-pad';
  if (kek.length === 32) return 'id-aes256-wrap-pad';
  throw new RangeError('AES-KWP keys are 16, 24 or 32 bytes');
}

/** AES-KWP wrap (RFC 5649). */
export function kwpWrap(kek: Uint8Array, plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv(kwpCipherName(kek), kek, KWP_AIV);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

/** AES-KWP unwrap; null when the integrity check fails. The caller zeroes the result. */
export function kwpUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer | null {
  if (wrapped.length < KWP_MIN_BYTES || wrapped.length % 8 !== 0) return null;
  try {
    // OpenSSL's wrap modes do the whole unwrap (and its check) in update().
    const decipher = createDecipheriv(kwpCipherName(kek), kek, KWP_AIV);
    const first = decipher.update(wrapped);
    const last = decipher.final();
    return last.length === 0 ? first : Buffer.concat([first, last]);
  } catch {
    return null;
  }
}

const unwrapFailed = (): VhsmFailure => new VhsmFailure('DECRYPT_FAILED', 'wrapped_key could not be unwrapped with this wrapping key');

/** Key material from a wrapped blob; the caller zeroes it. */
export async function unwrapTransported(privateKey: KeyObject, wrapped: Uint8Array): Promise<Buffer> {
  const k = rsaModulusBytes(privateKey);
  if (wrapped.length < k + KWP_MIN_BYTES) throw invalid(`wrapped_key is shorter than ${k + KWP_MIN_BYTES} bytes`);
  let ephemeral: Buffer;
  try {
    ephemeral = await oaepSha256Decrypt(privateKey, wrapped.subarray(0, k));
  } catch {
    throw unwrapFailed();
  }
  try {
    if (![16, 24, 32].includes(ephemeral.length)) throw unwrapFailed();
    const material = kwpUnwrap(ephemeral, wrapped.subarray(k));
    if (!material) throw unwrapFailed();
    return material;
  } finally {
    ephemeral.fill(0);
  }
}

/** Wraps key material for `publicKey` (a fresh ephemeral AES-256 key per call). */
export function wrapForTransport(publicKey: KeyObject, material: Uint8Array): Buffer {
  const ephemeral = randomBytes(EPHEMERAL_KEY_BYTES);
  try {
    return Buffer.concat([oaepSha256Encrypt(publicKey, ephemeral), kwpWrap(ephemeral, material)]);
  } finally {
    ephemeral.fill(0);
  }
}

export const MIN_WRAPPING_RSA_BITS = 2048;
export const MAX_WRAPPING_RSA_BITS = 4096;

/** A caller-supplied wrapping key: an RSA public key of 2048..4096 bits, SPKI DER. */
export function parseWrappingPublicKey(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    throw invalid('wrapping_public_key is not an SPKI DER public key');
  }
  const bits = key.asymmetricKeyType === 'rsa' ? (key.asymmetricKeyDetails?.modulusLength ?? 0) : 0;
  if (bits < MIN_WRAPPING_RSA_BITS || bits > MAX_WRAPPING_RSA_BITS) {
    throw invalid(`wrapping_public_key must be an RSA key of ${MIN_WRAPPING_RSA_BITS}..${MAX_WRAPPING_RSA_BITS} bits`);
  }
  return key;
}
