/**
 * Key agreement (ECDH, X25519) and derivation (HKDF): the result is stored as
 * a new key, and its material is returned only when it was created
 * extractable.
 */
import type { KeyObject } from 'node:crypto';
import { KEY_FORMATS, KEY_TYPES, KEY_USAGES } from '../../proto/index.js';
import { agree, kdfMechanism, peerPublicKey, supportsAgreement, type KeyTypeSpec } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler, SessionOpContext } from '../context.js';
import type { ValidKdf, ValidKeySpec } from '../validate.js';
import { noteUse, specFor, storeNewKey, usableKey, usageMaskFor } from './common.js';

const invalid = (message: string): VhsmFailure => new VhsmFailure('INVALID_ARGUMENT', message);

/** The result's key type: derived material is always a secret key. */
function resultSpecFor(result: ValidKeySpec): KeyTypeSpec {
  const spec = specFor(result.keyType);
  if (spec.kind !== 'secret') throw invalid('result.type must be a secret key type (secret, aes-256, chacha20, hmac)');
  return spec;
}

/** Runs the KDF into material for `spec`; the caller zeroes the result. */
function derived(spec: KeyTypeSpec, kdf: ValidKdf, ikm: KeyObject | Uint8Array, lengthBytes: number): Buffer {
  const mechanism = kdfMechanism(kdf.algorithm);
  if (!mechanism) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'kdf algorithm not supported');
  const length = lengthBytes || spec.defaultLengthBytes || 32;
  if (length > mechanism.maxOutputBytes) throw invalid(`${mechanism.name} produces at most ${mechanism.maxOutputBytes} bytes`);
  const okm = mechanism.derive(ikm, kdf.salt, kdf.info, length);
  try {
    return spec.importMaterial(KEY_FORMATS.raw, okm);
  } finally {
    okm.fill(0);
  }
}

/** Stores the derived key; returns its info and, if extractable, a copy of the material. */
async function storeDerived(ctx: SessionOpContext, result: ValidKeySpec, spec: KeyTypeSpec, usages: number, material: Buffer) {
  const copy = result.extractable ? Buffer.from(material) : undefined;
  try {
    return { key: await storeNewKey(ctx, result, spec, usages, material), keyMaterial: copy };
  } catch (error) {
    copy?.fill(0); // the key was not stored: its material goes nowhere
    throw error;
  }
}

export const agreeKey: Handler<'agreeKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.privateKeyId, KEY_USAGES.derive);
    if (!supportsAgreement(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'key agreement needs an ec-p256, ec-p384, ec-p521 or x25519 key');
    const spec = resultSpecFor(request.result);
    if (!request.kdf && spec.type !== KEY_TYPES.secret) throw invalid('without kdf the result is the raw shared secret: result.type must be secret');
    const usages = usageMaskFor(spec, request.result.usages);
    const peer = peerPublicKey(key.keyType, request.peerPublicKey);
    const shared = agree(key, peer);
    let material: Buffer;
    try {
      if (request.kdf) {
        material = derived(spec, request.kdf, shared, request.lengthBytes);
      } else {
        if (request.lengthBytes !== 0 && request.lengthBytes !== shared.length) throw invalid(`the shared secret is ${shared.length} bytes; use a kdf for other lengths`);
        material = spec.importMaterial(KEY_FORMATS.raw, shared);
      }
    } finally {
      shared.fill(0);
    }
    const stored = await storeDerived(ctx, request.result, spec, usages, material);
    noteUse(ctx, key);
    return { agreeKey: stored };
  },
};

export const deriveKey: Handler<'deriveKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.baseKeyId, KEY_USAGES.derive);
    if (key.keyType !== KEY_TYPES.secret || !key.loaded.secretKey) throw new VhsmFailure('WRONG_KEY_TYPE', 'derivation needs a secret key as input');
    const spec = resultSpecFor(request.result);
    const usages = usageMaskFor(spec, request.result.usages);
    const material = derived(spec, request.kdf, key.loaded.secretKey, request.lengthBytes);
    const stored = await storeDerived(ctx, request.result, spec, usages, material);
    noteUse(ctx, key);
    return { deriveKey: stored };
  },
};
