/**
 * Key management: generate, import, list, info, delete, public key export,
 * and plain export of keys created extractable.
 */
import { exportPublicKey as exportPublic } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler } from '../context.js';
import { extractableKey, loadedKey, specFor, storeNewKey, usageMaskFor } from './common.js';
import { toKeyInfo } from './convert.js';

export const generateKey: Handler<'generateKey'> = {
  needsSession: true,
  async run(ctx, request) {
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
    const rows = await ctx.services.keys.list(ctx.session.userId, request.afterKeyId, request.limit + 1);
    const page = rows.slice(0, request.limit);
    const more = rows.length > request.limit;
    return { listKeys: { keys: page.map(toKeyInfo), nextAfterKeyId: more ? page[page.length - 1]!.keyId : '' } };
  },
};

export const keyInfo: Handler<'keyInfo'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.keyId = request.keyId;
    const meta = await ctx.services.keys.meta(ctx.session.userId, request.keyId);
    if (!meta) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${request.keyId}`);
    return { keyInfo: toKeyInfo(meta) };
  },
};

export const deleteKey: Handler<'deleteKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.keyId = request.keyId;
    await ctx.commit(async (tx) => {
      if (!(await tx.deleteKey(ctx.session.userId, request.keyId))) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${request.keyId}`);
    });
    ctx.services.sessions.forgetKey(ctx.session.userId, request.keyId);
    return { deleteKey: {} };
  },
};

export const exportPublicKey: Handler<'exportPublicKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await loadedKey(ctx, request.keyId);
    return { exportPublicKey: { data: exportPublic(key.loaded, request.format) } };
  },
};

export const exportKey: Handler<'exportKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await extractableKey(ctx, request.keyId);
    return { exportKey: { keyData: specFor(key.keyType).exportMaterial(key.loaded, request.format) } };
  },
};

