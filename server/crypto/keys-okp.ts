/**
 * Curve25519 key types: Ed25519 (signatures) and X25519 (key agreement).
 * Imported as PKCS#8 or as the raw 32-byte private key (RFC 8410).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { KEY_FORMATS, KEY_TYPES, SIGNATURE_ALGORITHMS, type KeyTypeName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { checkKeyPair, invalid, loadPrivate, parsePkcs8, pkcs8Of, type KeyTypeSpec } from './key-material.js';
import { maskOf, Usage, type UsageMask } from './usages.js';

interface OkpRow {
  readonly type: number;
  readonly name: KeyTypeName;
  readonly nodeType: 'ed25519' | 'x25519';
  /** RFC 8410 PKCS#8 prefix; the 32-byte private key follows. */
  readonly pkcs8Prefix: Buffer;
  readonly usages: UsageMask;
  readonly defaultSignature?: number;
}

function okpKeyType(row: OkpRow): KeyTypeSpec {
  return {
    type: row.type,
    name: row.name,
    kind: 'key-pair',
    allowedUsages: row.usages,
    defaultUsages: row.usages,
    defaultSignature: row.defaultSignature,
    async generate() {
      const { privateKey } = row.nodeType === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('x25519');
      return pkcs8Of(privateKey);
    },
    importMaterial(format, data) {
      let key: KeyObject;
      if (format === KEY_FORMATS.raw) {
        if (data.length !== 32) throw invalid(`a raw ${row.name} private key is 32 bytes`);
        const der = Buffer.concat([row.pkcs8Prefix, data]);
        try {
          key = parsePkcs8(der);
        } finally {
          der.fill(0);
        }
      } else if (format === KEY_FORMATS['pkcs8-der']) {
        key = parsePkcs8(data);
      } else {
        throw invalid(`${row.name} keys are imported as pkcs8-der or raw`);
      }
      if (key.asymmetricKeyType !== row.nodeType) throw new VhsmFailure('WRONG_KEY_TYPE', `key_data is not an ${row.name} private key`);
      checkKeyPair(key);
      return pkcs8Of(key);
    },
    load: loadPrivate,
    exportMaterial(key, format) {
      if (!key.privateKey) throw invalid('no private key');
      const der = pkcs8Of(key.privateKey);
      if (format === KEY_FORMATS['pkcs8-der']) return der;
      if (format === KEY_FORMATS.raw) {
        const raw = Buffer.from(der.subarray(der.length - 32));
        der.fill(0);
        return raw;
      }
      der.fill(0);
      throw invalid(`${row.name} keys export as pkcs8-der or raw`);
    },
    lengthOf: () => 0,
  };
}

export const ed25519 = okpKeyType({
  type: KEY_TYPES.ed25519,
  name: 'ed25519',
  nodeType: 'ed25519',
  pkcs8Prefix: Buffer.from('302e020100300506032b657004220420', 'hex'),
  usages: maskOf([Usage.sign, Usage.verify]),
  defaultSignature: SIGNATURE_ALGORITHMS.ed25519,
});

export const x25519 = okpKeyType({
  type: KEY_TYPES.x25519,
  name: 'x25519',
  nodeType: 'x25519',
  pkcs8Prefix: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  usages: maskOf([Usage.derive]),
});
