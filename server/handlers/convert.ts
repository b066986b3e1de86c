/**
 * Stored rows → protocol messages: KeyInfo, PublicKeyObject, CertificateInfo.
 */
import type { pb } from '../../proto/index.js';
import type { CertificateRow } from '../certstore.js';
import { usagesOf } from '../crypto/engine.js';
import type { KeyMeta, PublicKeyRow } from '../keystore.js';

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

/** A key pair's public half as listed before login: no use counters (activity is not public). */
export function toPublicKeyObject(row: PublicKeyRow): pb.PublicKeyObject.$Properties {
  return { key: { ...toKeyInfo(row.meta), lastUsedMs: 0, useCount: 0 }, spkiDer: row.spki };
}

export function toCertificateInfo(row: CertificateRow): pb.CertificateInfo.$Properties {
  return { certId: row.certId, id: row.objectId, label: row.label, der: row.der, createdMs: row.createdMs };
}
