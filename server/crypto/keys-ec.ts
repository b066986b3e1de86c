/**
 * EC key types: P-256, P-384, P-521 (ECDSA and ECDH) and secp256k1 (ECDSA
 * and BIP-340). Imported as PKCS#8 or as the raw private scalar.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { KEY_FORMATS, SIGNATURE_ALGORITHMS, type KeyTypeName } from '../../proto/index.js';
import { VhsmFailure } from '../errors.js';
import { keyBytesFromSpki, scalarFromSec1, sec1FromScalar } from './der.js';
import { P256, P384, P521, SECP256K1, type EcCurve } from './ec-curves.js';
import { checkKeyPair, invalid, loadPrivate, parsePkcs8, pkcs8Of, type KeyTypeSpec } from './key-material.js';
import { maskOf, Usage } from './usages.js';

/** The private scalar of an EC key, big-endian, fixed length. Caller zeroes it. */
export function ecScalarOf(privateKey: KeyObject): Buffer {
  const sec1 = privateKey.export({ format: 'der', type: 'sec1' });
  try {
    return scalarFromSec1(sec1);
  } finally {
    sec1.fill(0);
  }
}

function fromScalar(curve: EcCurve, name: string, scalar: Uint8Array): KeyObject {
  if (scalar.length !== curve.scalarBytes || !curve.noble.utils.isValidSecretKey(scalar)) {
    throw invalid(`a raw ${name} private key is a ${curve.scalarBytes}-byte scalar in 1..n-1`);
  }
  const sec1 = sec1FromScalar(scalar, curve.oid);
  try {
    return createPrivateKey({ key: sec1, format: 'der', type: 'sec1' });
  } finally {
    sec1.fill(0);
  }
}

function ecKeyType(name: KeyTypeName, curve: EcCurve, defaultSignature: number, agreement: boolean): KeyTypeSpec {
  const signing = [Usage.sign, Usage.verify];
  return {
    type: curve.keyType,
    name,
    kind: 'key-pair',
    allowedUsages: maskOf(agreement ? [...signing, Usage.derive] : signing),
    defaultUsages: maskOf(signing),
    defaultSignature,
    async generate() {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve.nodeName });
      return pkcs8Of(privateKey);
    },
    importMaterial(format, data) {
      let key: KeyObject;
      if (format === KEY_FORMATS['pkcs8-der']) key = parsePkcs8(data);
      else if (format === KEY_FORMATS.raw) key = fromScalar(curve, name, data);
      else throw invalid(`${name} keys are imported as pkcs8-der or raw`);
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== curve.nodeName) {
        throw new VhsmFailure('WRONG_KEY_TYPE', `key_data is not a ${curve.jwkName} private key`);
      }
      checkKeyPair(key);
      return pkcs8Of(key);
    },
    load: loadPrivate,
    exportMaterial(key, format) {
      if (!key.privateKey) throw invalid('no private key');
      if (format === KEY_FORMATS['pkcs8-der']) return pkcs8Of(key.privateKey);
      if (format === KEY_FORMATS.raw) return ecScalarOf(key.privateKey);
      throw invalid(`${name} keys export as pkcs8-der or raw`);
    },
    lengthOf: () => 0,
  };
}

export const ecP256 = ecKeyType('ec-p256', P256, SIGNATURE_ALGORITHMS['ecdsa-sha256'], true);
export const ecP384 = ecKeyType('ec-p384', P384, SIGNATURE_ALGORITHMS['ecdsa-sha384'], true);
export const ecP521 = ecKeyType('ec-p521', P521, SIGNATURE_ALGORITHMS['ecdsa-sha512'], true);
export const ecSecp256k1 = ecKeyType('ec-secp256k1', SECP256K1, SIGNATURE_ALGORITHMS['ecdsa-sha256'], false);

/** The uncompressed public point (04 || x || y) of an EC public key. */
export function ecPointOf(publicKey: KeyObject): Buffer {
  return keyBytesFromSpki(publicKey.export({ format: 'der', type: 'spki' }));
}
