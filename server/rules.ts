/**
 * Field rules shared by request validation and the admin tool.
 */
import { randomBytes } from 'node:crypto';

/** Usernames: ASCII, so they log and compare unambiguously. */
export const USERNAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
/** Client-chosen key ids. Server-chosen ids are 32 lowercase hex characters, which also match. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** Passwords are any bytes, 1..1024 of them: vhsm-admin, login and change_password apply the same rule. */
export const MIN_PASSWORD_BYTES = 1;
export const MAX_PASSWORD_BYTES = 1024;
/** Server-chosen object ids (certificates; also server-chosen key ids): 128 random bits, lowercase hex. */
export const SERVER_ID_PATTERN = /^[0-9a-f]{32}$/;
/** PKCS#11 CKA_ID of a certificate: the bytes that pair it with a key (normally the key id's). */
export const MAX_OBJECT_ID_BYTES = 64;
export const MAX_LABEL_BYTES = 128;
/** Container ids are u32 in the kernel ABI. */
export const MAX_CTID = 0xffff_ffff;

export function isValidUsername(name: string): boolean {
  return USERNAME_PATTERN.test(name);
}

export function isValidKeyId(keyId: string): boolean {
  return KEY_ID_PATTERN.test(keyId);
}

/** A server-chosen id (SERVER_ID_PATTERN). */
export function newServerId(): string {
  return randomBytes(16).toString('hex');
}

export function isValidServerId(id: string): boolean {
  return SERVER_ID_PATTERN.test(id);
}

export function isValidCtid(ctid: number): boolean {
  return Number.isInteger(ctid) && ctid >= 0 && ctid <= MAX_CTID;
}

/** Labels are free text without control characters. */
export function isValidLabel(label: string): boolean {
  // eslint-disable-next-line no-control-regex
  return Buffer.byteLength(label, 'utf8') <= MAX_LABEL_BYTES && !/[\u0000-\u001f\u007f-\u009f]/.test(label);
}
