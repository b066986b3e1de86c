/**
 * Secret key types: raw bytes of a bounded length, loaded as secret
 * KeyObjects. HMAC keys, AES-256 and ChaCha20 keys, and generic secrets
 * (shared secrets and KDF input).
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import { ENCRYPTION_ALGORITHMS, KEY_FORMATS, KEY_TYPES, MAC_ALGORITHMS, type KeyTypeName } from '../../proto/index.js';
import { invalid, type KeyTypeSpec } from './key-material.js';
import { maskOf, Usage, type UsageMask } from './usages.js';

interface SecretRow {
  readonly type: number;
  readonly name: KeyTypeName;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly defaultBytes: number;
  readonly usages: UsageMask;
  readonly defaultMac?: number;
  readonly defaultEncryption?: number;
}

function secretKeyType(row: SecretRow): KeyTypeSpec {
  const sizes = row.minBytes === row.maxBytes ? `${row.minBytes}` : `${row.minBytes}..${row.maxBytes}`;
  const checkLength = (length: number): void => {
    if (length < row.minBytes || length > row.maxBytes) throw invalid(`${row.name} keys are ${sizes} bytes`);
  };
  return {
    type: row.type,
    name: row.name,
    kind: 'secret',
    allowedUsages: row.usages,
    defaultUsages: row.usages,
    defaultMac: row.defaultMac,
    defaultEncryption: row.defaultEncryption,
    defaultLengthBytes: row.defaultBytes,
    async generate(lengthBytes) {
      const length = lengthBytes || row.defaultBytes;
      checkLength(length);
      return randomBytes(length);
    },
    importMaterial(format, data) {
      if (format !== KEY_FORMATS.raw) throw invalid(`${row.name} keys are imported as raw bytes`);
      checkLength(data.length);
      return Buffer.from(data);
    },
    load: (material) => ({ secretKey: createSecretKey(material) }), // copies the bytes
    exportMaterial(key, format) {
      if (format !== KEY_FORMATS.raw || !key.secretKey) throw invalid(`${row.name} keys export as raw`);
      return key.secretKey.export();
    },
    lengthOf: (material) => material.length,
  };
}

export const hmac = secretKeyType({
  type: KEY_TYPES.hmac,
  name: 'hmac',
  minBytes: 16,
  maxBytes: 64,
  defaultBytes: 32,
  usages: maskOf([Usage.mac]),
  defaultMac: MAC_ALGORITHMS['hmac-sha256'],
});

export const aes256 = secretKeyType({
  type: KEY_TYPES['aes-256'],
  name: 'aes-256',
  minBytes: 32,
  maxBytes: 32,
  defaultBytes: 32,
  usages: maskOf([Usage.encrypt, Usage.decrypt]),
  defaultEncryption: ENCRYPTION_ALGORITHMS['aes-256-gcm'],
});

export const chacha20 = secretKeyType({
  type: KEY_TYPES.chacha20,
  name: 'chacha20',
  minBytes: 32,
  maxBytes: 32,
  defaultBytes: 32,
  usages: maskOf([Usage.encrypt, Usage.decrypt]),
  defaultEncryption: ENCRYPTION_ALGORITHMS['chacha20-poly1305'],
});

/** Generic secret: ECDH shared secrets (32..66 bytes) and HKDF input keying material. */
export const secret = secretKeyType({
  type: KEY_TYPES.secret,
  name: 'secret',
  minBytes: 16,
  maxBytes: 512,
  defaultBytes: 32,
  usages: maskOf([Usage.derive]),
});
