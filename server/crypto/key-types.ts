/**
 * Key types: one row per type with how to generate, import, load and export
 * its material, and which usages it may have. Issue 4 adds rows (P-384,
 * RSA, AES, X25519, ...); nothing else needs to change to accept them.
 *
 * Stored material is PKCS#8 DER for key pairs and the raw bytes for secret
 * keys; it only ever exists in the clear inside the server process.
 */
import { createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { KEY_FORMATS, KEY_TYPES, SIGNATURE_ALGORITHMS, MAC_ALGORITHMS, type KeyTypeName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { maskOf, Usage, type UsageMask } from './usages.js';

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
  /** Signature algorithm used when a request leaves it unspecified. */
  readonly defaultSignature?: number;
  readonly defaultMac?: number;
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

const invalid = (message: string): VhsmFailure => new VhsmFailure('INVALID_ARGUMENT', message);

function parsePkcs8(data: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(data), format: 'der', type: 'pkcs8' });
  } catch {
    throw invalid('key_data is not a PKCS#8 DER private key');
  }
}

function pkcs8Of(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'pkcs8' });
}

function loadPrivate(material: Buffer): LoadedKey {
  const privateKey = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** RFC 8410 PKCS#8 prefix for an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const ecP256: KeyTypeSpec = {
  type: KEY_TYPES['ec-p256'],
  name: 'ec-p256',
  kind: 'key-pair',
  allowedUsages: maskOf([Usage.sign, Usage.verify]),
  defaultUsages: maskOf([Usage.sign, Usage.verify]),
  defaultSignature: SIGNATURE_ALGORITHMS['ecdsa-sha256'],
  async generate() {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return pkcs8Of(privateKey);
  },
  importMaterial(format, data) {
    if (format !== KEY_FORMATS['pkcs8-der']) throw invalid('ec-p256 keys are imported as pkcs8-der');
    const key = parsePkcs8(data);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new VhsmFailure('WRONG_KEY_TYPE', 'key_data is not a P-256 private key');
    }
    return pkcs8Of(key);
  },
  load: loadPrivate,
  exportMaterial(key, format) {
    if (format !== KEY_FORMATS['pkcs8-der'] || !key.privateKey) throw invalid('ec-p256 keys export as pkcs8-der');
    return pkcs8Of(key.privateKey);
  },
  lengthOf: () => 0,
};

const ed25519: KeyTypeSpec = {
  type: KEY_TYPES.ed25519,
  name: 'ed25519',
  kind: 'key-pair',
  allowedUsages: maskOf([Usage.sign, Usage.verify]),
  defaultUsages: maskOf([Usage.sign, Usage.verify]),
  defaultSignature: SIGNATURE_ALGORITHMS.ed25519,
  async generate() {
    const { privateKey } = generateKeyPairSync('ed25519');
    return pkcs8Of(privateKey);
  },
  importMaterial(format, data) {
    let key: KeyObject;
    if (format === KEY_FORMATS.raw) {
      if (data.length !== 32) throw invalid('a raw ed25519 private key is the 32-byte seed');
      const der = Buffer.concat([ED25519_PKCS8_PREFIX, data]);
      try {
        key = parsePkcs8(der);
      } finally {
        der.fill(0);
      }
    } else if (format === KEY_FORMATS['pkcs8-der']) {
      key = parsePkcs8(data);
    } else {
      throw invalid('ed25519 keys are imported as pkcs8-der or raw');
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new VhsmFailure('WRONG_KEY_TYPE', 'key_data is not an Ed25519 private key');
    return pkcs8Of(key);
  },
  load: loadPrivate,
  exportMaterial(key, format) {
    if (!key.privateKey) throw invalid('no private key');
    const der = pkcs8Of(key.privateKey);
    if (format === KEY_FORMATS['pkcs8-der']) return der;
    if (format === KEY_FORMATS.raw) {
      const seed = Buffer.from(der.subarray(der.length - 32));
      der.fill(0);
      return seed;
    }
    throw invalid('ed25519 keys export as pkcs8-der or raw');
  },
  lengthOf: () => 0,
};

const HMAC_MIN_BYTES = 16;
const HMAC_MAX_BYTES = 64;
const HMAC_DEFAULT_BYTES = 32;

const hmac: KeyTypeSpec = {
  type: KEY_TYPES.hmac,
  name: 'hmac',
  kind: 'secret',
  allowedUsages: maskOf([Usage.mac]),
  defaultUsages: maskOf([Usage.mac]),
  defaultMac: MAC_ALGORITHMS['hmac-sha256'],
  async generate(lengthBytes) {
    const length = lengthBytes || HMAC_DEFAULT_BYTES;
    if (length < HMAC_MIN_BYTES || length > HMAC_MAX_BYTES) {
      throw invalid(`hmac keys are ${HMAC_MIN_BYTES}..${HMAC_MAX_BYTES} bytes`);
    }
    return randomBytes(length);
  },
  importMaterial(format, data) {
    if (format !== KEY_FORMATS.raw) throw invalid('hmac keys are imported as raw bytes');
    if (data.length < HMAC_MIN_BYTES || data.length > HMAC_MAX_BYTES) {
      throw invalid(`hmac keys are ${HMAC_MIN_BYTES}..${HMAC_MAX_BYTES} bytes`);
    }
    return Buffer.from(data);
  },
  load: (material) => ({ secretKey: createSecretKey(material) }), // copies the bytes
  exportMaterial(key, format) {
    if (format !== KEY_FORMATS.raw || !key.secretKey) throw invalid('hmac keys export as raw');
    return key.secretKey.export();
  },
  lengthOf: (material) => material.length,
};

const KEY_TYPE_TABLE: ReadonlyMap<number, KeyTypeSpec> = new Map([ecP256, ed25519, hmac].map((spec) => [spec.type, spec]));

export function keyTypeSpec(type: number): KeyTypeSpec | undefined {
  return KEY_TYPE_TABLE.get(type);
}

/** Limits on import sizes (an RSA-4096 PKCS#8 is about 2.4 KiB). */
export const MAX_KEY_DATA_BYTES = 8 * 1024;
