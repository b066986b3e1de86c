/**
 * Stable string names for the protocol's enums, shared by the server (audit,
 * logs), the client library (its public API) and the tools.
 *
 * Each table maps a name to the enum number on the wire. Rows are appended;
 * existing rows never change.
 */

/** Error codes as strings (the ErrorCode enum without its prefix). */
export const ERROR_CODES = {
  BAD_REQUEST: 1,
  UNSUPPORTED_VERSION: 2,
  INVALID_ARGUMENT: 3,
  NOT_AUTHENTICATED: 4,
  SESSION_INVALID: 5,
  BAD_CREDENTIALS: 6,
  CONTAINER_NOT_ALLOWED: 7,
  LOGIN_THROTTLED: 8,
  LOCKED_OUT: 9,
  KEY_NOT_FOUND: 10,
  KEY_EXISTS: 11,
  USAGE_NOT_ALLOWED: 12,
  WRONG_KEY_TYPE: 13,
  NOT_EXTRACTABLE: 14,
  UNSUPPORTED_ALGORITHM: 15,
  RESOURCE_EXHAUSTED: 16,
  BUSY: 17,
  SHUTTING_DOWN: 18,
  INTERNAL: 19,
  KEY_CORRUPTED: 20,
  DECRYPT_FAILED: 21,
  STREAM_NOT_FOUND: 22,
  OBJECT_NOT_FOUND: 23,
  NOT_ALLOWED: 24,
  UNAVAILABLE: 25,
} as const;
export type ErrorCodeName = keyof typeof ERROR_CODES;

export const KEY_TYPES = {
  'ec-p256': 1,
  ed25519: 2,
  hmac: 3,
  'ec-p384': 4,
  'ec-p521': 5,
  'ec-secp256k1': 6,
  'rsa-2048': 7,
  'rsa-3072': 8,
  'rsa-4096': 9,
  'aes-256': 10,
  chacha20: 11,
  x25519: 12,
  secret: 13,
} as const;
export type KeyTypeName = keyof typeof KEY_TYPES;

export const KEY_USAGES = {
  sign: 1,
  verify: 2,
  encrypt: 3,
  decrypt: 4,
  wrap: 5,
  unwrap: 6,
  derive: 7,
  mac: 8,
} as const;
export type KeyUsageName = keyof typeof KEY_USAGES;

export const SIGNATURE_ALGORITHMS = {
  'ecdsa-sha256': 1,
  ed25519: 2,
  'ecdsa-sha384': 3,
  'ecdsa-sha512': 4,
  'rsa-pss-sha256': 5,
  'rsa-pss-sha384': 6,
  'rsa-pss-sha512': 7,
  'rsa-pkcs1-sha256': 8,
  'rsa-pkcs1-sha384': 9,
  'rsa-pkcs1-sha512': 10,
  bip340: 11,
  /** PKCS#11 CKM_ECDSA: data is a digest of any length (1..64 bytes). */
  'ecdsa-digest': 12,
  /** PKCS#11 CKM_RSA_PKCS: PKCS#1 v1.5 type-1 padding over data as given (normally a DigestInfo). */
  'rsa-pkcs1-raw': 13,
} as const;
export type SignatureAlgorithmName = keyof typeof SIGNATURE_ALGORITHMS;

export const SIGNATURE_ENCODINGS = {
  der: 0,
  raw: 1,
} as const;
export type SignatureEncodingName = keyof typeof SIGNATURE_ENCODINGS;

export const MAC_ALGORITHMS = {
  'hmac-sha256': 1,
  'hmac-sha384': 2,
  'hmac-sha512': 3,
} as const;
export type MacAlgorithmName = keyof typeof MAC_ALGORITHMS;

export const DIGEST_ALGORITHMS = {
  sha256: 1,
  sha384: 2,
  sha512: 3,
  'sha3-256': 4,
  'sha3-512': 5,
} as const;
export type DigestAlgorithmName = keyof typeof DIGEST_ALGORITHMS;

export const ENCRYPTION_ALGORITHMS = {
  'aes-256-gcm': 1,
  'chacha20-poly1305': 2,
  'rsa-oaep-sha256': 3,
} as const;
export type EncryptionAlgorithmName = keyof typeof ENCRYPTION_ALGORITHMS;

export const KDF_ALGORITHMS = {
  'hkdf-sha256': 1,
} as const;
export type KdfAlgorithmName = keyof typeof KDF_ALGORITHMS;

export const KEY_FORMATS = {
  'pkcs8-der': 1,
  raw: 2,
} as const;
export type KeyFormatName = keyof typeof KEY_FORMATS;

export const PUBLIC_KEY_FORMATS = {
  'spki-der': 1,
  'spki-pem': 2,
  jwk: 3,
} as const;
export type PublicKeyFormatName = keyof typeof PUBLIC_KEY_FORMATS;

/** Reverse lookup: enum number → name, or undefined for numbers not in the table. */
export function nameOf<T extends Record<string, number>>(table: T, value: number): keyof T | undefined {
  for (const [name, number] of Object.entries(table)) if (number === value) return name as keyof T;
  return undefined;
}

/** Enum numbers valid in `table` (used by validation: anything else is INVALID_ARGUMENT). */
export function valuesOf(table: Record<string, number>): ReadonlySet<number> {
  return new Set(Object.values(table));
}

/** Operation names: the Request.op oneof members (and Response.result members). */
export const OPERATIONS = [
  'login',
  'logout',
  'changePassword',
  'generateKey',
  'importKey',
  'listKeys',
  'keyInfo',
  'deleteKey',
  'exportPublicKey',
  'exportKey',
  'listPublicObjects',
  'createCertificate',
  'deleteCertificate',
  'sign',
  'verify',
  'mac',
  'verifyMac',
  'digest',
  'encrypt',
  'decrypt',
  'agreeKey',
  'deriveKey',
  'random',
  'wrappingKey',
  'importWrappedKey',
  'exportWrappedKey',
  'digestInit',
  'macInit',
  'streamUpdate',
  'streamFinal',
  'streamAbort',
] as const;
export type OperationName = (typeof OPERATIONS)[number];
