/**
 * AES-256-GCM key wrapping, the one cipher of the key hierarchy.
 *
 * Blob layout: version (1 byte) || nonce (12) || ciphertext || tag (16).
 * The nonce is random per wrap; with 96-bit nonces and far fewer than 2^32
 * wraps under one key, collisions are not a concern. The associated data
 * binds a blob to where it is stored (see aad.ts), so a blob copied to
 * another row or user fails to open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const WRAP_KEY_BYTES = 32;
export const WRAP_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

export function wrapKey(wrappingKey: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  if (wrappingKey.length !== WRAP_KEY_BYTES) throw new RangeError('wrapping key must be 32 bytes');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', wrappingKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
}

/** Returns the plaintext, or null when the key, the blob or the AAD is wrong. The caller zeroes it. */
export function unwrapKey(wrappingKey: Uint8Array, blob: Uint8Array, aad: Uint8Array): Buffer | null {
  if (wrappingKey.length !== WRAP_KEY_BYTES) throw new RangeError('wrapping key must be 32 bytes');
  if (blob.length < WRAP_OVERHEAD || blob[0] !== VERSION) return null;
  const nonce = blob.subarray(1, 1 + NONCE_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  const body = blob.subarray(1 + NONCE_BYTES, blob.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', wrappingKey, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const first = decipher.update(body);
  try {
    const last = decipher.final();
    return last.length === 0 ? first : Buffer.concat([first, last]);
  } catch {
    first.fill(0);
    return null;
  }
}
