/**
 * RSA signatures: RSASSA-PSS (MGF1 with the same hash, salt = hash length
 * when signing, any salt length accepted when verifying) and
 * RSASSA-PKCS1-v1_5, with SHA-256/384/512; and PKCS#1 v1.5 over data as
 * given (PKCS#11 CKM_RSA_PKCS: the caller brings the DigestInfo).
 *
 * Messages: node:crypto; signing runs in the libuv pool (an RSA-4096
 * private operation takes milliseconds). Pre-computed digests: the padding
 * is built here (PKCS#1 v1.5 by OpenSSL from the DigestInfo, PSS in
 * rsa-pss.ts) and the raw RSA operation done by OpenSSL.
 */
import { constants, privateEncrypt, publicDecrypt, randomBytes, sign as cryptoSign, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { KEY_TYPES, SIGNATURE_ALGORITHMS, type SignatureAlgorithmName } from '../../proto/index.js';
import { SHA256, SHA384, SHA512, type HashInfo } from './hashes.js';
import { must } from './key-material.js';
import { emsaPssEncode, emsaPssVerify } from './rsa-pss.js';
import type { SignatureMechanism } from './signatures.js';

const RSA_KEY_TYPES = new Set<number>([KEY_TYPES['rsa-2048'], KEY_TYPES['rsa-3072'], KEY_TYPES['rsa-4096']]);

type Padding = 'pss' | 'pkcs1';

function paddingOptions(padding: Padding, forVerify: boolean) {
  if (padding === 'pkcs1') return { padding: constants.RSA_PKCS1_PADDING };
  return {
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: forVerify ? constants.RSA_PSS_SALTLEN_AUTO : constants.RSA_PSS_SALTLEN_DIGEST,
  };
}

function modulusBits(key: KeyObject): number {
  return must(key.asymmetricKeyDetails?.modulusLength, 'modulus length');
}

/** PKCS#1 v1.5 type-1 padding needs 11 bytes: 00 01, at least eight FF, 00. */
const PKCS1_OVERHEAD = 11;

/** EMSA-PKCS1-v1_5 encoding of `t` (normally a DigestInfo): 00 01 FF..FF 00 t. */
function pkcs1Encoded(t: Uint8Array, length: number): Buffer {
  const em = Buffer.alloc(length, 0xff);
  em[0] = 0x00;
  em[1] = 0x01;
  em[length - t.length - 1] = 0x00;
  em.set(t, length - t.length);
  return em;
}

/** The DigestInfo of a SHA-2 digest: what PKCS#1 v1.5 signs. */
function digestInfo(hash: HashInfo, digest: Uint8Array): Buffer {
  return Buffer.concat([must(hash.digestInfoPrefix, 'DigestInfo'), digest]);
}

/** PKCS#1 v1.5 signature over `t` as given: OpenSSL pads (type 1) and runs the blinded private operation. */
function pkcs1Sign(privateKey: KeyObject, t: Uint8Array): Buffer {
  return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, t);
}

/** Recovers the encoded message and compares it in constant time with the one `t` makes. */
function pkcs1Verify(publicKey: KeyObject, t: Uint8Array, signature: Uint8Array): boolean {
  const k = Math.ceil(modulusBits(publicKey) / 8);
  if (signature.length !== k || t.length > k - PKCS1_OVERHEAD) return false;
  const recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
  return timingSafeEqual(recovered, pkcs1Encoded(t, k));
}

function signDigest(privateKey: KeyObject, hash: HashInfo, padding: Padding, digest: Uint8Array): Buffer {
  if (padding === 'pkcs1') return pkcs1Sign(privateKey, digestInfo(hash, digest));
  const bits = modulusBits(privateKey);
  const em = emsaPssEncode(hash, digest, bits - 1, randomBytes(hash.outputBytes));
  // A k-byte input for the raw operation; EM is one byte shorter when modBits - 1 is a multiple of 8.
  const input = em.length === bits / 8 ? em : Buffer.concat([Buffer.alloc(1), em]);
  return privateEncrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, input);
}

function verifyDigest(publicKey: KeyObject, hash: HashInfo, padding: Padding, digest: Uint8Array, signature: Uint8Array): boolean {
  if (padding === 'pkcs1') return pkcs1Verify(publicKey, digestInfo(hash, digest), signature);
  const bits = modulusBits(publicKey);
  const k = Math.ceil(bits / 8);
  if (signature.length !== k) return false;
  const recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
  const emLength = Math.ceil((bits - 1) / 8);
  if (emLength < k && recovered[0] !== 0) return false;
  return emsaPssVerify(hash, digest, recovered.subarray(k - emLength), bits - 1);
}

function rsaSignature(name: SignatureAlgorithmName, hash: HashInfo, padding: Padding): SignatureMechanism {
  return {
    algorithm: SIGNATURE_ALGORITHMS[name],
    name,
    keyTypes: RSA_KEY_TYPES,
    prehashBytes: hash.outputBytes,
    async sign(key, data, { prehashed }) {
      const privateKey = must(key.loaded.privateKey, 'private key');
      if (prehashed) return signDigest(privateKey, hash, padding, data);
      return new Promise<Uint8Array>((resolve, reject) => {
        cryptoSign(hash.nodeName, data, { key: privateKey, ...paddingOptions(padding, false) }, (error, signature) =>
          error ? reject(error) : resolve(signature),
        );
      });
    },
    async verify(key, data, signature, { prehashed }) {
      const publicKey = must(key.loaded.publicKey, 'public key');
      try {
        if (prehashed) return verifyDigest(publicKey, hash, padding, data, signature);
        return cryptoVerify(hash.nodeName, data, { key: publicKey, ...paddingOptions(padding, true) }, signature);
      } catch {
        return false;
      }
    },
  };
}

export const RSA_MECHANISMS: readonly SignatureMechanism[] = [
  rsaSignature('rsa-pss-sha256', SHA256, 'pss'),
  rsaSignature('rsa-pss-sha384', SHA384, 'pss'),
  rsaSignature('rsa-pss-sha512', SHA512, 'pss'),
  rsaSignature('rsa-pkcs1-sha256', SHA256, 'pkcs1'),
  rsaSignature('rsa-pkcs1-sha384', SHA384, 'pkcs1'),
  rsaSignature('rsa-pkcs1-sha512', SHA512, 'pkcs1'),
];

/**
 * PKCS#11 CKM_RSA_PKCS sign/verify: EMSA-PKCS1-v1_5 type-1 padding over
 * `data` exactly as given (OpenSSH sends a DER DigestInfo: 51/67/83 bytes
 * for SHA-256/384/512), at most modulus bytes − 11. Deterministic: with
 * data = DigestInfo(SHA-256(m)) the signature is rsa-pkcs1-sha256's over m.
 * Signs on the event loop (privateEncrypt has no asynchronous form), like
 * the prehashed PKCS#1 path.
 */
export const rsaPkcs1Raw: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS['rsa-pkcs1-raw'],
  name: 'rsa-pkcs1-raw',
  keyTypes: RSA_KEY_TYPES,
  dataBytes: (key) => ({ min: 0, max: Math.ceil(modulusBits(must(key.loaded.publicKey, 'public key')) / 8) - PKCS1_OVERHEAD }),
  async sign(key, data) {
    return pkcs1Sign(must(key.loaded.privateKey, 'private key'), data);
  },
  async verify(key, data, signature) {
    const publicKey = must(key.loaded.publicKey, 'public key');
    try {
      return pkcs1Verify(publicKey, data, signature);
    } catch {
      return false; // a signature not below the modulus and the like
    }
  },
};
