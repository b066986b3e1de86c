/**
 * The dispatch table: one handler per Request.op.
 */
import type { HandlerTable } from '../context.js';
import { createCertificate, deleteCertificate } from './cert-ops.js';
import { decrypt, encrypt } from './cipher-ops.js';
import { digest, mac, random, sign, verify, verifyMac } from './crypto-ops.js';
import { agreeKey, deriveKey } from './derive-ops.js';
import { deleteKey, exportKey, exportPublicKey, generateKey, importKey, keyInfo, listKeys } from './key-ops.js';
import { changePassword } from './password-ops.js';
import { listPublicObjects } from './public-ops.js';
import { login, logout } from './session-ops.js';
import { digestInit, macInit, streamAbort, streamFinal, streamUpdate } from './stream-ops.js';
import { exportWrappedKey, importWrappedKey, wrappingKey } from './wrap-ops.js';

export const HANDLERS: HandlerTable = {
  login,
  logout,
  changePassword,
  generateKey,
  importKey,
  listKeys,
  keyInfo,
  deleteKey,
  exportPublicKey,
  exportKey,
  listPublicObjects,
  createCertificate,
  deleteCertificate,
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
