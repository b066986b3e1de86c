/**
 * Protocol messages → the library's types (names instead of enum numbers,
 * Dates instead of epoch milliseconds, copies instead of views).
 */
import { KEY_TYPES, KEY_USAGES, nameOf, uint64ToSafeNumber, type pb } from '../proto/index.js';
import type { CertificateInfo, KeyInfo, PublicKeyObject, PublicObjectPage } from './types.js';

const encoder = new TextEncoder();

export const bytesOf = (value: Uint8Array | null | undefined): Uint8Array => new Uint8Array(value ?? new Uint8Array(0));

export function toKeyInfo(info: pb.KeyInfo.$Properties): KeyInfo {
  const lastUsed = uint64ToSafeNumber(info.lastUsedMs) ?? 0;
  return {
    keyId: info.keyId ?? '',
    type: nameOf(KEY_TYPES, info.type ?? 0) ?? 'unknown',
    label: info.label ?? '',
    usages: (info.usages ?? []).map((usage) => nameOf(KEY_USAGES, usage) ?? 'unknown'),
    extractable: info.extractable === true,
    createdAt: new Date(uint64ToSafeNumber(info.createdMs) ?? 0),
    lastUsedAt: lastUsed ? new Date(lastUsed) : null,
    useCount: uint64ToSafeNumber(info.useCount) ?? 0,
    lengthBytes: info.lengthBytes ?? 0,
  };
}

export function toCertificateInfo(info: pb.CertificateInfo.$Properties): CertificateInfo {
  return {
    certId: info.certId ?? '',
    id: bytesOf(info.id),
    label: info.label ?? '',
    der: bytesOf(info.der),
    createdAt: new Date(uint64ToSafeNumber(info.createdMs) ?? 0),
  };
}

function toPublicKeyObject(object: pb.PublicKeyObject.$Properties): PublicKeyObject {
  return { key: toKeyInfo(object.key ?? {}), spki: bytesOf(object.spkiDer) };
}

export function toPublicObjectPage(list: pb.PublicObjectList.$Properties): PublicObjectPage {
  return {
    keys: (list.keys ?? []).map(toPublicKeyObject),
    nextAfterKeyId: list.nextAfterKeyId ?? '',
    certificates: (list.certificates ?? []).map(toCertificateInfo),
  };
}

/** A password as bytes to send: strings are encoded here and zeroed by `release`; Uint8Arrays stay the caller's. */
export function passwordBytes(password: string | Uint8Array): { readonly bytes: Uint8Array; release(): void } {
  if (typeof password !== 'string') return { bytes: password, release: () => undefined };
  const bytes = encoder.encode(password);
  return { bytes, release: () => bytes.fill(0) };
}
