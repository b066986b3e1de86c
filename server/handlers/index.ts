/**
 * The dispatch table: one handler per Request.op. Issue 4 adds rows.
 */
import type { HandlerTable } from '../context.js';
import { digest, mac, sign, verify, verifyMac } from './crypto-ops.js';
import { deleteKey, exportKey, exportPublicKey, generateKey, importKey, keyInfo, listKeys } from './key-ops.js';
import { login, logout } from './session-ops.js';

export const HANDLERS: HandlerTable = {
  login,
  logout,
  generateKey,
  importKey,
  listKeys,
  keyInfo,
  deleteKey,
  exportPublicKey,
  exportKey,
  sign,
  verify,
  mac,
  verifyMac,
  digest,
};
