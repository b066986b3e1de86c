/**
 * Encryption mechanisms: AES-256-GCM and ChaCha20-Poly1305 (AEAD, a fresh
 * random 96-bit nonce per encryption, 128-bit tags only), and RSA-OAEP with
 * SHA-256 (MGF1-SHA256, empty label).
 *
 * Random 96-bit nonces keep the collision risk under 2^-32 for up to 2^32
 * encryptions per key (NIST SP 800-38D §8.3); rotate keys well before that.
 * A failed decryption releases nothing and says only DECRYPT_FAILED. RSA
 * private operations run in the libuv pool (WebCrypto), AEAD on the loop
 * (microseconds per KiB).
 */
import { constants, createCipheriv, createDecipheriv, publicEncrypt, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { ENCRYPTION_ALGORITHMS, KEY_TYPES, type EncryptionAlgorithmName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { invalid, must, type KeyRef } from './key-material.js';
import { rsaModulusBytes } from './keys-rsa.js';

export interface Sealed {
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

export interface CipherMechanism {
  readonly algorithm: number;
  readonly name: EncryptionAlgorithmName;
  readonly keyTypes: ReadonlySet<number>;
  encrypt(key: KeyRef, plaintext: Uint8Array, aad: Uint8Array): Sealed;
  /** The plaintext (caller zeroes it), or VhsmFailure DECRYPT_FAILED / INVALID_ARGUMENT. */
  decrypt(key: KeyRef, sealed: Sealed, aad: Uint8Array): Promise<Buffer>;
}

export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
const EMPTY = new Uint8Array(0);

const decryptFailed = (): VhsmFailure => new VhsmFailure('DECRYPT_FAILED', 'ciphertext, tag, nonce or aad do not authenticate');

type AeadName = 'aes-256-gcm' | 'chacha20-poly1305';

function cipherOf(name: AeadName, key: KeyObject, nonce: Uint8Array) {
  const options = { authTagLength: AEAD_TAG_BYTES };
  return name === 'aes-256-gcm' ? createCipheriv(name, key, nonce, options) : createCipheriv(name, key, nonce, options);
}

function decipherOf(name: AeadName, key: KeyObject, nonce: Uint8Array) {
  const options = { authTagLength: AEAD_TAG_BYTES };
  return name === 'aes-256-gcm' ? createDecipheriv(name, key, nonce, options) : createDecipheriv(name, key, nonce, options);
}

function aead(name: AeadName, keyType: number): CipherMechanism {
  return {
    algorithm: ENCRYPTION_ALGORITHMS[name],
    name,
    keyTypes: new Set([keyType]),
    encrypt(key, plaintext, aad) {
      const nonce = randomBytes(AEAD_NONCE_BYTES);
      const cipher = cipherOf(name, must(key.loaded.secretKey, 'secret'), nonce);
      cipher.setAAD(aad, { plaintextLength: plaintext.length });
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return { nonce, ciphertext, tag: cipher.getAuthTag() };
    },
    async decrypt(key, { nonce, ciphertext, tag }, aad) {
      if (nonce.length !== AEAD_NONCE_BYTES) throw invalid(`${name} nonces are ${AEAD_NONCE_BYTES} bytes`);
      if (tag.length !== AEAD_TAG_BYTES) throw invalid(`${name} tags are ${AEAD_TAG_BYTES} bytes`);
      const decipher = decipherOf(name, must(key.loaded.secretKey, 'secret'), nonce);
      decipher.setAAD(aad, { plaintextLength: ciphertext.length });
      decipher.setAuthTag(tag);
      const first = decipher.update(ciphertext);
      try {
        const last = decipher.final();
        return last.length === 0 ? first : Buffer.concat([first, last]);
      } catch {
        first.fill(0); // unauthenticated plaintext never leaves
        throw decryptFailed();
      }
    },
  };
}

/** OAEP overhead with SHA-256: 2 * 32 + 2 bytes. */
const OAEP_SHA256_OVERHEAD = 66;

export function oaepSha256Encrypt(publicKey: KeyObject, plaintext: Uint8Array): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, plaintext);
}

/**
 * The private key as a WebCrypto key, imported once per KeyObject (so it
 * lives as long as the session's cached key): WebCrypto runs RSA private
 * operations in the libuv pool, where node:crypto's privateDecrypt would
 * hold the event loop for milliseconds (RSA-4096: ~7 ms).
 */
const oaepKeys = new WeakMap<KeyObject, Promise<webcrypto.CryptoKey>>();

function oaepCryptoKey(privateKey: KeyObject): Promise<webcrypto.CryptoKey> {
  let cryptoKey = oaepKeys.get(privateKey);
  if (!cryptoKey) {
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    cryptoKey = webcrypto.subtle.importKey('pkcs8', der, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt']).finally(() => der.fill(0));
    oaepKeys.set(privateKey, cryptoKey);
  }
  return cryptoKey;
}

/** Throws DECRYPT_FAILED for any OAEP decoding failure (one answer: no padding oracle). */
export async function oaepSha256Decrypt(privateKey: KeyObject, ciphertext: Uint8Array): Promise<Buffer> {
  try {
    return Buffer.from(await webcrypto.subtle.decrypt({ name: 'RSA-OAEP' }, await oaepCryptoKey(privateKey), ciphertext));
  } catch {
    throw decryptFailed();
  }
}

export function oaepMaxPlaintext(key: KeyObject): number {
  return rsaModulusBytes(key) - OAEP_SHA256_OVERHEAD;
}

const rsaOaepSha256: CipherMechanism = {
  algorithm: ENCRYPTION_ALGORITHMS['rsa-oaep-sha256'],
  name: 'rsa-oaep-sha256',
  keyTypes: new Set([KEY_TYPES['rsa-2048'], KEY_TYPES['rsa-3072'], KEY_TYPES['rsa-4096']]),
  encrypt(key, plaintext, aad) {
    if (aad.length !== 0) throw invalid('rsa-oaep-sha256 takes no aad');
    const publicKey = must(key.loaded.publicKey, 'public key');
    const limit = oaepMaxPlaintext(publicKey);
    if (plaintext.length > limit) throw invalid(`plaintext is longer than ${limit} bytes, the most rsa-oaep-sha256 takes with this key`);
    return { nonce: EMPTY, ciphertext: oaepSha256Encrypt(publicKey, plaintext), tag: EMPTY };
  },
  async decrypt(key, { nonce, ciphertext, tag }, aad) {
    if (nonce.length !== 0 || tag.length !== 0 || aad.length !== 0) throw invalid('rsa-oaep-sha256 takes no nonce, tag or aad');
    const privateKey = must(key.loaded.privateKey, 'private key');
    const k = rsaModulusBytes(privateKey);
    if (ciphertext.length !== k) throw invalid(`rsa-oaep-sha256 ciphertexts for this key are ${k} bytes`);
    return oaepSha256Decrypt(privateKey, ciphertext);
  },
};

const CIPHER_TABLE: ReadonlyMap<number, CipherMechanism> = new Map(
  [aead('aes-256-gcm', KEY_TYPES['aes-256']), aead('chacha20-poly1305', KEY_TYPES.chacha20), rsaOaepSha256].map((row) => [row.algorithm, row]),
);

export function cipherMechanism(algorithm: number): CipherMechanism | undefined {
  return CIPHER_TABLE.get(algorithm);
}
