/**
 * EMSA-PSS encoding and verification (RFC 8017 §9.1), for RSA-PSS over a
 * pre-computed digest: node:crypto only signs whole messages, so the
 * prehashed path encodes here and applies the raw RSA operation through
 * OpenSSL (privateEncrypt / publicDecrypt with RSA_NO_PADDING, blinded).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HashInfo } from './hashes.js';

const ZEROS_8 = Buffer.alloc(8);

/** MGF1 (RFC 8017 §B.2.1) with the given hash. */
export function mgf1(hash: HashInfo, seed: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  const counter = Buffer.alloc(4);
  for (let i = 0, have = 0; have < length; i++, have += hash.outputBytes) {
    counter.writeUInt32BE(i);
    blocks.push(createHash(hash.nodeName).update(seed).update(counter).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

function hPrime(hash: HashInfo, mHash: Uint8Array, salt: Uint8Array): Buffer {
  return createHash(hash.nodeName).update(ZEROS_8).update(mHash).update(salt).digest();
}

/** EMSA-PSS-ENCODE: the encoded message EM of ceil(emBits / 8) bytes. */
export function emsaPssEncode(hash: HashInfo, mHash: Uint8Array, emBits: number, salt: Uint8Array): Buffer {
  const hLen = hash.outputBytes;
  const emLen = Math.ceil(emBits / 8);
  if (mHash.length !== hLen || emLen < hLen + salt.length + 2) throw new RangeError('PSS: encoding error');
  const h = hPrime(hash, mHash, salt);
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - salt.length - hLen - 2] = 0x01;
  db.set(salt, emLen - salt.length - hLen - 1);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >>> (8 * emLen - emBits);
  return Buffer.concat([db, h, Buffer.of(0xbc)]);
}

/** EMSA-PSS-VERIFY, accepting any salt length (the salt is recovered from EM). */
export function emsaPssVerify(hash: HashInfo, mHash: Uint8Array, em: Uint8Array, emBits: number): boolean {
  const hLen = hash.outputBytes;
  const emLen = Math.ceil(emBits / 8);
  if (mHash.length !== hLen || em.length !== emLen || emLen < hLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const topMask = 0xff >>> (8 * emLen - emBits);
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  if ((maskedDb[0]! & ~topMask) !== 0) return false;
  const db = mgf1(hash, h, maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= maskedDb[i]!;
  db[0]! &= topMask;
  const one = db.findIndex((byte) => byte !== 0);
  if (one < 0 || db[one] !== 0x01) return false;
  return timingSafeEqual(hPrime(hash, mHash, db.subarray(one + 1)), h);
}
