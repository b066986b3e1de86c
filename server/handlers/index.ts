/**
 * The dispatch table: one handler per Request.op.
 */
import type { HandlerTable } from '../context.js';
import { decrypt, encrypt } from './cipher-ops.js';
import { digest, mac, random, sign, verify, verifyMac } from './crypto-ops.js';
import { agreeKey, deriveKey } from './derive-ops.js';
import { deleteKey, exportKey, exportPublicKey, generateKey, importKey, keyInfo, listKeys } from './key-ops.js';
import { login, logout } from './session-ops.js';
import { digestInit, macInit, streamAbort, streamFinal, streamUpdate } from './stream-ops.js';
import { exportWrappedKey, importWrappedKey, wrappingKey } from './wrap-ops.js';

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
  encrypt,
  decrypt,
  agreeKey,
  deriveKey,
  random,
  wrappingKey,
  importWrappedKey,
  exportWrappedKey,
  digestInit,
  macInit,
  streamUpdate,
  streamFinal,
  streamAbort,
};
