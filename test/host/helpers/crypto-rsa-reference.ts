/**
 * A small, independent RSA in BigInt with @noble/hashes, for cross-checking
 * the server (@noble has no RSA): RSASSA-PKCS1-v1_5 and RSASSA-PSS sign and
 * verify, RSAES-OAEP encrypt and decrypt (RFC 8017), written from the RFC,
 * sharing no code with OpenSSL or the server. Slow and not constant-time:
 * tests only.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';

interface Hash {
  (message: Uint8Array): Uint8Array;
  readonly outputLen: number;
}
export type HashName = 'sha256' | 'sha384' | 'sha512';
export const HASHES: Record<HashName, Hash> = { sha256, sha384, sha512 };

const DIGEST_INFO: Record<HashName, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

export interface RsaPublic {
  readonly n: bigint;
  readonly e: bigint;
  readonly bits: number;
  readonly k: number;
}
export interface RsaPrivate extends RsaPublic {
  readonly d: bigint;
}

const big = (b64url: string): bigint => BigInt(`0x${Buffer.from(b64url, 'base64url').toString('hex') || '0'}`);

export function rsaPublicOf(key: KeyObject): RsaPublic {
  const jwk = key.export({ format: 'jwk' });
  const n = big(jwk.n!);
  const bits = n.toString(2).length;
  return { n, e: big(jwk.e!), bits, k: Math.ceil(bits / 8) };
}

export function rsaPrivateOf(key: KeyObject): RsaPrivate {
  const jwk = key.export({ format: 'jwk' });
  return { ...rsaPublicOf(key), d: big(jwk.d!) };
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

const os2ip = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
function i2osp(x: bigint, length: number): Buffer {
  const hexText = x.toString(16).padStart(length * 2, '0');
  if (hexText.length > length * 2) throw new RangeError('integer too large');
  return Buffer.from(hexText, 'hex');
}

const concat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);

function mgf1(hash: Hash, seed: Uint8Array, length: number): Buffer {
  const out: Uint8Array[] = [];
  for (let counter = 0; out.length * hash.outputLen < length; counter++) out.push(hash(concat(seed, i2osp(BigInt(counter), 4))));
  return concat(...out).subarray(0, length);
}

const xor = (a: Uint8Array, b: Uint8Array): Buffer => Buffer.from(a.map((byte, i) => byte ^ b[i]!));

// ---- RSASSA-PKCS1-v1_5 ----

/** The DER DigestInfo of a digest (RFC 8017 §9.2): what PKCS#1 v1.5 signs, and what CKM_RSA_PKCS callers send. */
export function digestInfo(hashName: HashName, digest: Uint8Array): Buffer {
  return concat(Buffer.from(DIGEST_INFO[hashName], 'hex'), digest);
}

/** EMSA-PKCS1-v1_5 over T as given: 00 01 PS(FF, at least 8) 00 T. */
function emsaPkcs1Raw(t: Uint8Array, k: number): Buffer {
  if (t.length > k - 11) throw new RangeError('intended encoded message length too short');
  return concat(Buffer.of(0, 1), Buffer.alloc(k - t.length - 3, 0xff), Buffer.of(0), t);
}

/** RSASSA-PKCS1-v1_5 with T given (PKCS#11 CKM_RSA_PKCS). */
export function pkcs1SignRaw(key: RsaPrivate, t: Uint8Array): Buffer {
  return i2osp(modPow(os2ip(emsaPkcs1Raw(t, key.k)), key.d, key.n), key.k);
}

export function pkcs1VerifyRaw(key: RsaPublic, t: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== key.k) return false;
  const em = i2osp(modPow(os2ip(signature), key.e, key.n), key.k);
  return em.equals(emsaPkcs1Raw(t, key.k));
}

export function pkcs1Sign(key: RsaPrivate, hashName: HashName, digest: Uint8Array): Buffer {
  return pkcs1SignRaw(key, digestInfo(hashName, digest));
}

export function pkcs1Verify(key: RsaPublic, hashName: HashName, digest: Uint8Array, signature: Uint8Array): boolean {
  return pkcs1VerifyRaw(key, digestInfo(hashName, digest), signature);
}

// ---- RSASSA-PSS (MGF1 with the same hash) ----

export function pssSign(key: RsaPrivate, hashName: HashName, digest: Uint8Array, saltLength: number): Buffer {
  const hash = HASHES[hashName];
  const emBits = key.bits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(saltLength);
  const h = hash(concat(Buffer.alloc(8), digest, salt));
  const db = concat(Buffer.alloc(emLen - saltLength - hash.outputLen - 2), Buffer.of(1), salt);
  const maskedDb = xor(db, mgf1(hash, h, db.length));
  maskedDb[0]! &= 0xff >> (8 * emLen - emBits);
  return i2osp(modPow(os2ip(concat(maskedDb, h, Buffer.of(0xbc))), key.d, key.n), key.k);
}

/** Verifies with the given salt length (RFC 8017 §9.1.2 takes it as a parameter). */
export function pssVerify(key: RsaPublic, hashName: HashName, digest: Uint8Array, signature: Uint8Array, saltLength: number): boolean {
  const hash = HASHES[hashName];
  if (signature.length !== key.k) return false;
  const emBits = key.bits - 1;
  const emLen = Math.ceil(emBits / 8);
  const em = i2osp(modPow(os2ip(signature), key.e, key.n), key.k).subarray(key.k - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hash.outputLen - 1);
  const h = em.subarray(emLen - hash.outputLen - 1, emLen - 1);
  const db = xor(maskedDb, mgf1(hash, h, maskedDb.length));
  db[0]! &= 0xff >> (8 * emLen - emBits);
  const psLength = emLen - hash.outputLen - saltLength - 2;
  if (!db.subarray(0, psLength).every((byte) => byte === 0) || db[psLength] !== 1) return false;
  const salt = db.subarray(psLength + 1);
  return Buffer.from(hash(concat(Buffer.alloc(8), digest, salt))).equals(h);
}

// ---- RSAES-OAEP (SHA-256, MGF1-SHA256, empty label) ----

export function oaepEncrypt(key: RsaPublic, message: Uint8Array): Buffer {
  const hLen = 32;
  const lHash = sha256(new Uint8Array(0));
  const db = concat(lHash, Buffer.alloc(key.k - message.length - 2 * hLen - 2), Buffer.of(1), message);
  const seed = randomBytes(hLen);
  const maskedDb = xor(db, mgf1(sha256, seed, db.length));
  const maskedSeed = xor(seed, mgf1(sha256, maskedDb, hLen));
  return i2osp(modPow(os2ip(concat(Buffer.of(0), maskedSeed, maskedDb)), key.e, key.n), key.k);
}

export function oaepDecrypt(key: RsaPrivate, ciphertext: Uint8Array): Buffer {
  const hLen = 32;
  const em = i2osp(modPow(os2ip(ciphertext), key.d, key.n), key.k);
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seed = xor(maskedSeed, mgf1(sha256, maskedDb, hLen));
  const db = xor(maskedDb, mgf1(sha256, seed, maskedDb.length));
  if (em[0] !== 0 || !db.subarray(0, hLen).equals(Buffer.from(sha256(new Uint8Array(0))))) throw new Error('OAEP decoding error');
  const one = db.indexOf(1, hLen);
  if (one < 0 || !db.subarray(hLen, one).every((byte) => byte === 0)) throw new Error('OAEP decoding error');
  return db.subarray(one + 1);
}
