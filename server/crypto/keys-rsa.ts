/**
 * RSA key types: 2048, 3072 and 4096 bits, public exponent 65537, PKCS#8.
 * Generation runs in the libuv pool (an RSA-4096 key takes about a second).
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { ENCRYPTION_ALGORITHMS, KEY_FORMATS, KEY_TYPES, SIGNATURE_ALGORITHMS, type KeyTypeName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { checkKeyPair, invalid, loadPrivate, parsePkcs8, pkcs8Of, type KeyTypeSpec } from './key-material.js';
import { maskOf, Usage } from './usages.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const PUBLIC_EXPONENT = 65537;

function rsaKeyType(type: number, name: KeyTypeName, bits: number): KeyTypeSpec {
  return {
    type,
    name,
    kind: 'key-pair',
    allowedUsages: maskOf([Usage.sign, Usage.verify, Usage.encrypt, Usage.decrypt, Usage.wrap, Usage.unwrap]),
    defaultUsages: maskOf([Usage.sign, Usage.verify]),
    defaultSignature: SIGNATURE_ALGORITHMS['rsa-pss-sha256'],
    defaultEncryption: ENCRYPTION_ALGORITHMS['rsa-oaep-sha256'],
    async generate() {
      const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: PUBLIC_EXPONENT });
      return pkcs8Of(privateKey);
    },
    importMaterial(format, data) {
      if (format !== KEY_FORMATS['pkcs8-der']) throw invalid(`${name} keys are imported as pkcs8-der`);
      const key = parsePkcs8(data);
      const details = key.asymmetricKeyDetails;
      if (key.asymmetricKeyType !== 'rsa' || details?.modulusLength !== bits) {
        throw new VhsmFailure('WRONG_KEY_TYPE', `key_data is not a ${bits}-bit RSA private key`);
      }
      if (details.publicExponent !== BigInt(PUBLIC_EXPONENT)) throw invalid('RSA keys must have public exponent 65537');
      checkKeyPair(key);
      return pkcs8Of(key);
    },
    load: loadPrivate,
    exportMaterial(key, format) {
      if (format !== KEY_FORMATS['pkcs8-der'] || !key.privateKey) throw invalid(`${name} keys export as pkcs8-der`);
      return pkcs8Of(key.privateKey);
    },
    lengthOf: () => 0,
  };
}

export const rsa2048 = rsaKeyType(KEY_TYPES['rsa-2048'], 'rsa-2048', 2048);
export const rsa3072 = rsaKeyType(KEY_TYPES['rsa-3072'], 'rsa-3072', 3072);
export const rsa4096 = rsaKeyType(KEY_TYPES['rsa-4096'], 'rsa-4096', 4096);

/** Modulus length in bytes of a loaded RSA key (0 for anything else). */
export function rsaModulusBytes(key: { asymmetricKeyType?: string; asymmetricKeyDetails?: { modulusLength?: number } }): number {
  return key.asymmetricKeyType === 'rsa' ? (key.asymmetricKeyDetails?.modulusLength ?? 0) / 8 : 0;
}
