/**
 * Wrapped key transport (BYOK): the user's default wrapping key, import of
 * wrapped keys, and wrapped export of extractable keys. Format in
 * crypto/byok.ts.
 */
import type { KeyObject } from 'node:crypto';
import { KEY_TYPES, KEY_USAGES } from '../../proto/index.js';
import { exportPublicKey, maskOf, parseWrappingPublicKey, unwrapTransported, wrapForTransport } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { Handler, SessionOpContext } from '../context.js';
import type { CachedKey } from '../sessions.js';
import { extractableKey, naturalFormat, noteUse, specFor, storeNewKey, usableKey, usageMaskFor } from './common.js';
import { toKeyInfo } from './convert.js';

/** The default wrapping key's id in every user's key namespace. */
export const WRAPPING_KEY_ID = 'vhsm-wrapping-key';
const WRAPPING_KEY_TYPE = KEY_TYPES['rsa-4096'];
const RSA_TYPES = new Set<number>([KEY_TYPES['rsa-2048'], KEY_TYPES['rsa-3072'], KEY_TYPES['rsa-4096']]);

function rsaKey(key: CachedKey): CachedKey {
  if (!RSA_TYPES.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', `key ${key.keyId} is not an RSA key`);
  return key;
}

/** Creates the default wrapping key unless it exists (a concurrent request may win: fine). */
async function ensureWrappingKey(ctx: SessionOpContext): Promise<void> {
  if (await ctx.services.keys.meta(ctx.session.userId, WRAPPING_KEY_ID)) return;
  const spec = specFor(WRAPPING_KEY_TYPE);
  const material = await spec.generate(0);
  const request = { keyType: WRAPPING_KEY_TYPE, keyId: WRAPPING_KEY_ID, label: 'BYOK wrapping key', usages: [], extractable: false };
  try {
    await storeNewKey(ctx, request, spec, maskOf([KEY_USAGES.unwrap]), material);
  } catch (error) {
    if (!(error instanceof VhsmFailure && error.code === 'KEY_EXISTS')) throw error;
  }
}

export const wrappingKey: Handler<'wrappingKey'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.audit.keyId = WRAPPING_KEY_ID;
    await ensureWrappingKey(ctx);
    const key = rsaKey(await usableKey(ctx, WRAPPING_KEY_ID, KEY_USAGES.unwrap));
    const meta = await ctx.services.keys.meta(ctx.session.userId, WRAPPING_KEY_ID);
    if (!meta) throw new VhsmFailure('KEY_NOT_FOUND', `no key ${WRAPPING_KEY_ID}`);
    return { wrappingKey: { key: toKeyInfo(meta), publicKey: exportPublicKey(key.loaded, request.format) } };
  },
};

export const importWrappedKey: Handler<'importWrappedKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const wrapping = rsaKey(await usableKey(ctx, request.wrappingKeyId || WRAPPING_KEY_ID, KEY_USAGES.unwrap));
    const spec = specFor(request.spec.keyType);
    const usages = usageMaskFor(spec, request.spec.usages);
    const plain = await unwrapTransported(wrapping.loaded.privateKey!, request.wrappedKey);
    let material: Buffer;
    try {
      material = spec.importMaterial(request.format || naturalFormat(spec), plain);
    } finally {
      plain.fill(0);
    }
    const info = await storeNewKey(ctx, request.spec, spec, usages, material);
    noteUse(ctx, wrapping);
    return { importWrappedKey: info };
  },
};

export const exportWrappedKey: Handler<'exportWrappedKey'> = {
  needsSession: true,
  async run(ctx, request) {
    const key = await extractableKey(ctx, request.keyId);
    let publicKey: KeyObject;
    let wrapping: CachedKey | undefined;
    if (request.target.kind === 'stored') {
      wrapping = rsaKey(await usableKey(ctx, request.target.keyId, KEY_USAGES.wrap));
      publicKey = wrapping.loaded.publicKey!;
      ctx.audit.keyId = request.keyId; // the exported key is what the audit row is about
    } else {
      publicKey = parseWrappingPublicKey(request.target.spki);
    }
    const spec = specFor(key.keyType);
    const material = spec.exportMaterial(key.loaded, request.format || naturalFormat(spec));
    try {
      const wrappedKey = wrapForTransport(publicKey, material);
      if (wrapping) noteUse(ctx, wrapping);
      return { exportWrappedKey: { wrappedKey } };
    } finally {
      material.fill(0);
    }
  },
};
