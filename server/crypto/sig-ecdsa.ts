/**
 * ECDSA over P-256, P-384, P-521 and secp256k1 with SHA-256/384/512, and
 * over a caller's digest of any length (PKCS#11 CKM_ECDSA).
 *
 * Messages: node:crypto (OpenSSL). Pre-computed digests: signed by OpenSSL
 * through our small addon (native-ecdsa.ts), because node:crypto offers no
 * digest-input ECDSA (`sign(null, …)` hashes again with SHA-256), verified
 * with @noble/curves (`prehash: false`). secp256k1
 * signatures are normalised to low S; verification accepts either S, as
 * plain ECDSA does.
 */
import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { KEY_TYPES, SIGNATURE_ALGORITHMS, SIGNATURE_ENCODINGS, type SignatureAlgorithmName } from '../../proto/index.js';
import { ecCurveOf, type EcCurve } from './ec-curves.js';
import { SHA256, SHA384, SHA512, type HashInfo } from './hashes.js';
import { must, type KeyRef } from './key-material.js';
import { ecPointOf, ecScalarOf } from './keys-ec.js';
import { nativeEcdsa } from './native-ecdsa.js';
import type { SignatureMechanism } from './signatures.js';

const EC_KEY_TYPES = new Set<number>([KEY_TYPES['ec-p256'], KEY_TYPES['ec-p384'], KEY_TYPES['ec-p521'], KEY_TYPES['ec-secp256k1']]);

function curveOf(key: KeyRef): EcCurve {
  return must(ecCurveOf(key.keyType), 'EC curve');
}

const isRaw = (encoding: number): boolean => encoding === SIGNATURE_ENCODINGS.raw;

type DsaEncoding = 'der' | 'ieee-p1363';

/** node:crypto ECDSA, in the libuv pool for the slow curves. */
function nodeSign(curve: EcCurve, hash: HashInfo, data: Uint8Array, key: KeyObject, dsaEncoding: DsaEncoding): Promise<Buffer> {
  if (!curve.offload) return Promise.resolve(cryptoSign(hash.nodeName, data, { key, dsaEncoding }));
  return new Promise((resolve, reject) => cryptoSign(hash.nodeName, data, { key, dsaEncoding }, (error, signature) => (error ? reject(error) : resolve(signature))));
}

function nodeVerify(curve: EcCurve, hash: HashInfo, data: Uint8Array, key: KeyObject, dsaEncoding: DsaEncoding, signature: Uint8Array): Promise<boolean> {
  if (!curve.offload) return Promise.resolve(cryptoVerify(hash.nodeName, data, { key, dsaEncoding }, signature));
  return new Promise((resolve, reject) =>
    cryptoVerify(hash.nodeName, data, { key, dsaEncoding }, signature, (error, valid) => (error ? reject(error) : resolve(valid))),
  );
}

/** Low-S form of an r || s signature, in the requested encoding. */
function normalised(curve: EcCurve, p1363: Uint8Array, raw: boolean): Uint8Array {
  let signature = curve.noble.Signature.fromBytes(p1363, 'compact');
  if (signature.hasHighS()) signature = new curve.noble.Signature(signature.r, curve.noble.Point.Fn.ORDER - signature.s);
  return signature.toBytes(raw ? 'compact' : 'der');
}

/** ECDSA over a caller's digest, any length: OpenSSL truncates it to the order's bit length (bits2int). */
function signDigest(curve: EcCurve, privateKey: KeyObject, digest: Uint8Array, encoding: number): Uint8Array {
  const scalar = ecScalarOf(privateKey);
  let der: Buffer;
  try {
    der = nativeEcdsa().signDigest(curve.nodeName, scalar, digest);
  } finally {
    scalar.fill(0);
  }
  let signature = curve.noble.Signature.fromBytes(der, 'der');
  if (curve.lowS && signature.hasHighS()) signature = new curve.noble.Signature(signature.r, curve.noble.Point.Fn.ORDER - signature.s);
  return signature.toBytes(isRaw(encoding) ? 'compact' : 'der');
}

function verifyDigest(curve: EcCurve, publicKey: KeyObject, digest: Uint8Array, signature: Uint8Array, encoding: number): boolean {
  const format = isRaw(encoding) ? 'compact' : 'der';
  return curve.noble.verify(signature, digest, ecPointOf(publicKey), { prehash: false, lowS: false, format });
}

function ecdsa(name: SignatureAlgorithmName, hash: HashInfo): SignatureMechanism {
  return {
    algorithm: SIGNATURE_ALGORITHMS[name],
    name,
    keyTypes: EC_KEY_TYPES,
    prehashBytes: hash.outputBytes,
    async sign(key, data, { encoding, prehashed }) {
      const curve = curveOf(key);
      const privateKey = must(key.loaded.privateKey, 'private key');
      if (prehashed) return signDigest(curve, privateKey, data, encoding);
      if (!curve.lowS) return nodeSign(curve, hash, data, privateKey, isRaw(encoding) ? 'ieee-p1363' : 'der');
      return normalised(curve, await nodeSign(curve, hash, data, privateKey, 'ieee-p1363'), isRaw(encoding));
    },
    async verify(key, data, signature, { encoding, prehashed }) {
      const curve = curveOf(key);
      const publicKey = must(key.loaded.publicKey, 'public key');
      try {
        if (prehashed) return verifyDigest(curve, publicKey, data, signature, encoding);
        return await nodeVerify(curve, hash, data, publicKey, isRaw(encoding) ? 'ieee-p1363' : 'der', signature);
      } catch {
        return false; // malformed DER, wrong length and the like: simply not a valid signature
      }
    },
  };
}

export const ECDSA_MECHANISMS: readonly SignatureMechanism[] = [ecdsa('ecdsa-sha256', SHA256), ecdsa('ecdsa-sha384', SHA384), ecdsa('ecdsa-sha512', SHA512)];

/** Digest lengths CKM_ECDSA callers send: SHA-1 (pam_p11) up to SHA-512. */
export const ECDSA_DIGEST_BYTES = { min: 1, max: 64 } as const;

/**
 * PKCS#11 CKM_ECDSA: `data` is a digest of 1..64 bytes, used as ECDSA
 * specifies (its leftmost bits, as many as the group order has; shorter
 * input as it is). node:crypto has no digest-input ECDSA, so @noble signs
 * and verifies, as for the prehashed algorithms above.
 */
export const ecdsaDigest: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS['ecdsa-digest'],
  name: 'ecdsa-digest',
  keyTypes: EC_KEY_TYPES,
  dataBytes: () => ECDSA_DIGEST_BYTES,
  async sign(key, data, { encoding }) {
    return signDigest(curveOf(key), must(key.loaded.privateKey, 'private key'), data, encoding);
  },
  async verify(key, data, signature, { encoding }) {
    const curve = curveOf(key);
    const publicKey = must(key.loaded.publicKey, 'public key');
    try {
      return verifyDigest(curve, publicKey, data, signature, encoding);
    } catch {
      return false; // malformed signature
    }
  },
};
