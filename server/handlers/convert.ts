/**
 * Stored key metadata → protocol KeyInfo.
 */
import type { pb } from '../../proto/index.js';
import { usagesOf } from '../crypto/engine.js';
import type { KeyMeta } from '../keystore.js';

export function toKeyInfo(meta: KeyMeta): pb.KeyInfo.$Properties {
  return {
    keyId: meta.keyId,
    type: meta.keyType,
    label: meta.label,
    usages: usagesOf(meta.usages),
    extractable: meta.extractable,
    createdMs: meta.createdMs,
    lastUsedMs: meta.lastUsedMs,
    useCount: meta.useCount,
    lengthBytes: meta.lengthBytes,
  };
}
