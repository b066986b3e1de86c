/**
 * Ed25519 (RFC 8032, node:crypto) and BIP-340 Schnorr over secp256k1
 * (@noble/curves: OpenSSL 3.0 has no BIP-340). Both sign the message itself;
 * neither takes prehashed input.
 */
import { randomBytes, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import { KEY_TYPES, SIGNATURE_ALGORITHMS } from '../../proto/index.js';
import { must } from './key-material.js';
import { ecPointOf, ecScalarOf } from './keys-ec.js';
import type { SignatureMechanism } from './signatures.js';

export const ed25519: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS.ed25519,
  name: 'ed25519',
  keyTypes: new Set([KEY_TYPES.ed25519]),
  async sign(key, data) {
    return cryptoSign(null, data, must(key.loaded.privateKey, 'private key'));
  },
  async verify(key, data, signature) {
    try {
      return cryptoVerify(null, data, must(key.loaded.publicKey, 'public key'), signature);
    } catch {
      return false;
    }
  },
};

export const bip340: SignatureMechanism = {
  algorithm: SIGNATURE_ALGORITHMS.bip340,
  name: 'bip340',
  keyTypes: new Set([KEY_TYPES['ec-secp256k1']]),
  async sign(key, data) {
    const scalar = ecScalarOf(must(key.loaded.privateKey, 'private key'));
    try {
      return schnorr.sign(data, scalar, randomBytes(32)); // fresh auxiliary randomness, as BIP-340 recommends
    } finally {
      scalar.fill(0);
    }
  },
  async verify(key, data, signature) {
    const xOnly = ecPointOf(must(key.loaded.publicKey, 'public key')).subarray(1, 33);
    try {
      return signature.length === 64 && schnorr.verify(signature, data, xOnly);
    } catch {
      return false;
    }
  },
};
