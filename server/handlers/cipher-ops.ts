/**
 * encrypt and decrypt: AEAD with a server-chosen nonce, and RSA-OAEP.
 */
import { KEY_USAGES } from '../../proto/index.js';
import { cipherMechanism, keyTypeSpec, type CipherMechanism } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler } from '../context.js';
import type { CachedKey } from '../sessions.js';
import { noteUse, usableKey } from './common.js';

function cipherFor(key: CachedKey, algorithm: number): CipherMechanism {
  const chosen = algorithm || keyTypeSpec(key.keyType)?.defaultEncryption;
  const mechanism = chosen === undefined ? undefined : cipherMechanism(chosen);
  if (!mechanism || !mechanism.keyTypes.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'the algorithm does not fit this key');
  return mechanism;
}

export const encrypt: Handler<'encrypt'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.encrypt);
    const sealed = cipherFor(key, request.algorithm).encrypt(key, request.plaintext, request.aad);
    noteUse(ctx, key);
    return { encrypt: { nonce: sealed.nonce, ciphertext: sealed.ciphertext, tag: sealed.tag } };
  },
};

export const decrypt: Handler<'decrypt'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.decrypt);
    const plaintext = await cipherFor(key, request.algorithm).decrypt(key, request, request.aad);
    noteUse(ctx, key);
    return { decrypt: { plaintext } };
  },
};
