/**
 * Key management: generate, import, list, info, delete, public key export,
 * and plain export of keys created extractable.
 */
import { exportPublicKey as exportPublic, keyTypeSpec, maskOf, type KeyTypeSpec } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler, SessionOpContext } from '../context.js';
import { newKeyId } from '../keystore.js';
import type { ValidKeySpec } from '../validate.js';
import { toKeyInfo } from './convert.js';

function specFor(keyType: number): KeyTypeSpec {
  const spec = keyTypeSpec(keyType);
  if (!spec) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'key type not supported');
  return spec;
}

function usageMaskFor(spec: KeyTypeSpec, usages: readonly number[]): number {
  if (usages.length === 0) return spec.defaultUsages;
  const mask = maskOf(usages);
  if ((mask & ~spec.allowedUsages) !== 0) throw new VhsmFailure('USAGE_NOT_ALLOWED', `a usage in spec.usages is not allowed for ${spec.name} keys`);
  return mask;
}

/** Wraps and stores `material` (zeroed afterwards) and returns the new key's info. */
async function storeNewKey(ctx: SessionOpContext, request: ValidKeySpec, spec: KeyTypeSpec, usages: number, material: Buffer) {
  const { keys, clock, limits } = ctx.services;
  const keyId = request.keyId || newKeyId();
  ctx.audit.keyId = keyId;
  try {
    await ctx.commit(() => {
      if (keys.count(ctx.session.userId) >= limits.maxKeysPerUser) throw new VhsmFailure('RESOURCE_EXHAUSTED', 'key limit reached for this user');
      keys.insert(ctx.session, {
        keyId,
        keyType: spec.type,
        label: request.label,
        usages,
        extractable: request.extractable,
        material,
        createdMs: clock(),
      });
    });
  } finally {
    material.fill(0);
  }
  return toKeyInfo(keys.meta(ctx.session.userId, keyId)!);
}

export const generateKey: Handler<'generateKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.spec.keyId;
    const spec = specFor(request.spec.keyType);
    if (spec.kind === 'key-pair' && request.lengthBytes !== 0) throw new VhsmFailure('INVALID_ARGUMENT', 'length_bytes applies to secret keys only');
    const usages = usageMaskFor(spec, request.spec.usages);
    const material = await spec.generate(request.lengthBytes);
    return { generateKey: await storeNewKey(ctx, request.spec, spec, usages, material) };
  },
};

export const importKey: Handler<'importKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.spec.keyId;
    const spec = specFor(request.spec.keyType);
    const usages = usageMaskFor(spec, request.spec.usages);
    const material = spec.importMaterial(request.format, request.keyData);
    return { importKey: await storeNewKey(ctx, request.spec, spec, usages, material) };
  },
};

export const listKeys: Handler<'listKeys'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    const rows = ctx.services.keys.list(ctx.session.userId, request.afterKeyId, request.limit + 1);
    const page = rows.slice(0, request.limit);
    const more = rows.length > request.limit;
    return { listKeys: { keys: page.map(toKeyInfo), nextAfterKeyId: more ? page[page.length - 1]!.keyId : '' } };
  },
};

export const keyInfo: Handler<'keyInfo'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.keyId;
    const meta = ctx.services.keys.meta(ctx.session.userId, request.keyId);
    if (!meta) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${request.keyId}`);
    return { keyInfo: toKeyInfo(meta) };
  },
};

export const deleteKey: Handler<'deleteKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.keyId;
    await ctx.commit(() => {
      if (!ctx.services.keys.delete(ctx.session.userId, request.keyId)) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${request.keyId}`);
    });
    ctx.services.sessions.forgetKey(ctx.session.userId, request.keyId);
    return { deleteKey: {} };
  },
};

export const exportPublicKey: Handler<'exportPublicKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.keyId;
    const key = ctx.services.keys.load(ctx.session, request.keyId);
    return { exportPublicKey: { data: exportPublic(key.loaded, request.format) } };
  },
};

export const exportKey: Handler<'exportKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.user = ctx.session.username;
    ctx.audit.keyId = request.keyId;
    const key = ctx.services.keys.load(ctx.session, request.keyId);
    if (!key.extractable) throw new VhsmFailure('NOT_EXTRACTABLE', `key ${request.keyId} was not created extractable`);
    return { exportKey: { keyData: specFor(key.keyType).exportMaterial(key.loaded, request.format) } };
  },
};

