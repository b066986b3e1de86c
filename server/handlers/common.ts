/**
 * What several handler modules share: loading a key for a usage, counting
 * its use, resolving key types and usage masks, storing a new key.
 */
import { KEY_FORMATS } from '../../proto/index.js';
import { allows, keyTypeSpec, macMechanism, maskOf, type KeyTypeSpec, type MacMechanism } from '../crypto/engine.js';
import { VhsmFailure } from '../errors.js';
import type { SessionOpContext } from '../context.js';
import { spkiOf } from '../keystore.js';
import { newServerId } from '../rules.js';
import type { CachedKey } from '../sessions.js';
import type { ValidKeySpec } from '../validate.js';
import { toKeyInfo } from './convert.js';

// The audit row's user is set by the server before any session handler runs;
// handlers name the key.

/** Loads the key the request is about (and names it in the audit row). */
export function loadedKey(ctx: SessionOpContext, keyId: string): Promise<CachedKey> {
  ctx.audit.keyId = keyId;
  return ctx.services.keys.load(ctx.session, keyId, ctx.namedKey);
}

/** Loads the key and checks it may be used for `usage` (a KeyUsage value). */
export async function usableKey(ctx: SessionOpContext, keyId: string, usage: number): Promise<CachedKey> {
  const key = await loadedKey(ctx, keyId);
  if (!allows(key.usages, usage)) throw new VhsmFailure('USAGE_NOT_ALLOWED', `key ${keyId} does not allow this operation`);
  return key;
}

/** Loads the key and checks it was created extractable. */
export async function extractableKey(ctx: SessionOpContext, keyId: string): Promise<CachedKey> {
  const key = await loadedKey(ctx, keyId);
  if (!key.extractable) throw new VhsmFailure('NOT_EXTRACTABLE', `key ${keyId} was not created extractable`);
  return key;
}

/** Counts one successful use (written with the next group commit). */
export function noteUse(ctx: SessionOpContext, key: CachedKey): void {
  ctx.services.commits.noteKeyUse(key.rowId, ctx.services.clock());
}

export function specFor(keyType: number): KeyTypeSpec {
  const spec = keyTypeSpec(keyType);
  if (!spec) throw new VhsmFailure('UNSUPPORTED_ALGORITHM', 'key type not supported');
  return spec;
}

/** Key material format when a request leaves it unspecified. */
export function naturalFormat(spec: KeyTypeSpec): number {
  return spec.kind === 'key-pair' ? KEY_FORMATS['pkcs8-der'] : KEY_FORMATS.raw;
}

export function usageMaskFor(spec: KeyTypeSpec, usages: readonly number[]): number {
  if (usages.length === 0) return spec.defaultUsages;
  const mask = maskOf(usages);
  if ((mask & ~spec.allowedUsages) !== 0) throw new VhsmFailure('USAGE_NOT_ALLOWED', `a usage in spec.usages is not allowed for ${spec.name} keys`);
  return mask;
}

export function macFor(key: CachedKey, algorithm: number): MacMechanism {
  const chosen = algorithm || keyTypeSpec(key.keyType)?.defaultMac;
  const mechanism = chosen === undefined ? undefined : macMechanism(chosen);
  if (!mechanism || !mechanism.keyTypes.has(key.keyType)) throw new VhsmFailure('WRONG_KEY_TYPE', 'the algorithm does not fit this key');
  return mechanism;
}

/** Wraps and stores `material` (zeroed afterwards) and returns the new key's info. */
export async function storeNewKey(ctx: SessionOpContext, request: ValidKeySpec, spec: KeyTypeSpec, usages: number, material: Buffer) {
  const { keys, clock, limits } = ctx.services;
  const keyId = request.keyId || newServerId();
  ctx.audit.keyId = keyId;
  try {
    const publicKey = spkiOf(spec, material); // listed before login (list_public_objects)
    await ctx.commit(async (tx) => {
      if ((await tx.countKeys(ctx.session.userId)) >= limits.maxKeysPerUser) throw new VhsmFailure('RESOURCE_EXHAUSTED', 'key limit reached for this user');
      await keys.insert(tx, ctx.session, {
        keyId,
        keyType: spec.type,
        label: request.label,
        usages,
        extractable: request.extractable,
        material,
        publicKey,
        createdMs: clock(),
      });
    });
  } finally {
    material.fill(0);
  }
  return toKeyInfo((await keys.meta(ctx.session.userId, keyId))!);
}
