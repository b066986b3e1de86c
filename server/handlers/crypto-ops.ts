/**
 * Operations with stored keys (sign, verify, mac, verifyMac), digest and
 * random bytes.
 */
import { randomBytes } from 'node:crypto';
import { KEY_USAGES } from '../../proto/index.js';
import { digestMechanism, keyTypeSpec, macsEqual, signatureMechanism, type SignatureMechanism } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler } from '../context.js';
import type { CachedKey } from '../sessions.js';
import { macFor, noteUse, usableKey } from './common.js';

function signatureFor(key: CachedKey, algorithm: number): SignatureMechanism {
  const chosen = algorithm || keyTypeSpec(key.keyType)?.defaultSignature;
  const mechanism = chosen === undefined ? undefined : signatureMechanism(chosen);
  if (!mechanism || !mechanism.keyTypes.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'the algorithm does not fit this key');
  return mechanism;
}

/** Prehashed input must be a digest of the mechanism's hash; raw-input mechanisms bound their data. */
function checkInput(mechanism: SignatureMechanism, key: CachedKey, data: Uint8Array, prehashed: boolean): void {
  if (prehashed) {
    if (mechanism.prehashBytes === undefined) {
      const why = mechanism.dataBytes ? 'takes its input as given (there is no hash to name)' : 'signs the message itself';
      throw new VhsmFailure('INVALID_ARGUMENT', `${mechanism.name} ${why}: prehashed input is not accepted`);
    }
    if (data.length !== mechanism.prehashBytes) {
      throw new VhsmFailure('INVALID_ARGUMENT', `prehashed ${mechanism.name} input must be a ${mechanism.prehashBytes}-byte digest`);
    }
    return;
  }
  const bounds = mechanism.dataBytes?.(key);
  if (bounds && (data.length < bounds.min || data.length > bounds.max)) {
    throw new VhsmFailure('INVALID_ARGUMENT', `${mechanism.name} input must be ${bounds.min}..${bounds.max} bytes for this key`);
  }
}

export const sign: Handler<'sign'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.sign);
    const mechanism = signatureFor(key, request.algorithm);
    checkInput(mechanism, key, request.data, request.prehashed);
    const signature = await mechanism.sign(key, request.data, request);
    noteUse(ctx, key);
    return { sign: { signature } };
  },
};

export const verify: Handler<'verify'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.verify);
    const mechanism = signatureFor(key, request.algorithm);
    checkInput(mechanism, key, request.data, request.prehashed);
    const valid = await mechanism.verify(key, request.data, request.signature, request);
    noteUse(ctx, key);
    return { verify: { valid } };
  },
};

export const mac: Handler<'mac'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.mac);
    const value = macFor(key, request.algorithm).compute(key.loaded, request.data);
    noteUse(ctx, key);
    return { mac: { mac: value } };
  },
};

export const verifyMac: Handler<'verifyMac'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await usableKey(ctx, request.keyId, KEY_USAGES.mac);
    const expected = macFor(key, request.algorithm).compute(key.loaded, request.data);
    const valid = macsEqual(expected, request.mac);
    noteUse(ctx, key);
    return { verifyMac: { valid } };
  },
};

export const digest: Handler<'digest'> = {
  needsSession: true,
  async run(ctx, request) {
    const mechanism = digestMechanism(request.algorithm);
    if (!mechanism) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'digest algorithm not supported');
    return { digest: { digest: mechanism.digest(request.data) } };
  },
};

export const random: Handler<'random'> = {
  needsSession: true,
  async run(ctx, request) {
    return { random: { data: randomBytes(request.length) } };
  },
};
