/**
 * Operations with stored keys (sign, verify, mac, verifyMac) and digest.
 */
import { KEY_USAGES } from '../../proto/index.js';
import { allows, digestMechanism, keyTypeSpec, macMechanism, macsEqual, signatureMechanism } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler, SessionOpContext } from '../context.js';
import type { CachedKey } from '../sessions.js';

/** Loads the key and checks it may be used for `usage`. */
function usableKey(ctx: SessionOpContext, keyId: string, usage: number): CachedKey {
  ctx.audit.user = ctx.session.username;
  ctx.audit.keyId = keyId;
  const key = ctx.services.keys.load(ctx.session, keyId);
  if (!allows(key.usages, usage)) throw new VhsmFailure('USAGE_NOT_ALLOWED', `key ${keyId} does not allow this operation`);
  return key;
}

function signatureFor(key: CachedKey, algorithm: number) {
  const chosen = algorithm || keyTypeSpec(key.keyType)?.defaultSignature;
  const mechanism = chosen === undefined ? undefined : signatureMechanism(chosen);
  if (!mechanism || !mechanism.keyTypes.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'the algorithm does not fit this key');
  return mechanism;
}

function macFor(key: CachedKey, algorithm: number) {
  const chosen = algorithm || keyTypeSpec(key.keyType)?.defaultMac;
  const mechanism = chosen === undefined ? undefined : macMechanism(chosen);
  if (!mechanism || !mechanism.keyTypes.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'the algorithm does not fit this key');
  return mechanism;
}

function noteUse(ctx: SessionOpContext, key: CachedKey): void {
  ctx.services.commits.noteKeyUse(key.rowId, ctx.services.clock());
}

export const sign: Handler<'sign'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = usableKey(ctx, request.keyId, KEY_USAGES.sign);
    const signature = await signatureFor(key, request.algorithm).sign(key.loaded, request.data, request.encoding);
    noteUse(ctx, key);
    return { sign: { signature } };
  },
};

export const verify: Handler<'verify'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = usableKey(ctx, request.keyId, KEY_USAGES.verify);
    const valid = await signatureFor(key, request.algorithm).verify(key.loaded, request.data, request.signature, request.encoding);
    noteUse(ctx, key);
    return { verify: { valid } };
  },
};

export const mac: Handler<'mac'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = usableKey(ctx, request.keyId, KEY_USAGES.mac);
    const value = macFor(key, request.algorithm).compute(key.loaded, request.data);
    noteUse(ctx, key);
    return { mac: { mac: value } };
  },
};

export const verifyMac: Handler<'verifyMac'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = usableKey(ctx, request.keyId, KEY_USAGES.mac);
    const expected = macFor(key, request.algorithm).compute(key.loaded, request.data);
    const valid = macsEqual(expected, request.mac);
    noteUse(ctx, key);
    return { verifyMac: { valid } };
  },
};

export const digest: Handler<'digest'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    const mechanism = digestMechanism(request.algorithm);
    if (!mechanism) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'digest algorithm not supported');
    return { digest: { digest: mechanism.digest(request.data) } };
  },
};
