/**
 * Key rows as both backends read them (same columns; SQLite returns
 * `extractable` as 0/1, PostgreSQL as a boolean).
 */
import type { KeyMetaRow, WrappedKeyRow } from './backend.js';

export interface RawKeyRow {
  id: number;
  key_id: string;
  key_type: number;
  label: string;
  usages: number;
  extractable: number | boolean;
  length_bytes: number;
  created_ms: number;
  last_used_ms: number;
  use_count: number;
}

/**
 * The key-pair types that existed before schema 2 recorded public keys; the
 * same list as migration 3's keys_missing_public index, which the backfill
 * query must match word for word to use it.
 */
export const PAIRS_BEFORE_SCHEMA_2 = '1, 2, 4, 5, 6, 7, 8, 9, 12';

export const META_COLUMNS = 'id, key_id, key_type, label, usages, extractable, length_bytes, created_ms, last_used_ms, use_count';

export function toMeta(raw: RawKeyRow): KeyMetaRow {
  return {
    id: raw.id,
    keyId: raw.key_id,
    keyType: raw.key_type,
    label: raw.label,
    usages: raw.usages,
    extractable: Boolean(raw.extractable),
    lengthBytes: raw.length_bytes,
    createdMs: raw.created_ms,
    lastUsedMs: raw.last_used_ms,
    useCount: raw.use_count,
  };
}

export interface RawWrappedRow {
  id: number;
  key_id: string;
  key_type: number;
  usages: number;
  extractable: number | boolean;
  wrapped: Buffer;
}

export function toWrapped(raw: RawWrappedRow): WrappedKeyRow {
  return { id: raw.id, keyId: raw.key_id, keyType: raw.key_type, usages: raw.usages, extractable: Boolean(raw.extractable), wrapped: raw.wrapped };
}
