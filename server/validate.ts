/**
 * Request validation: the one place that looks at raw protobuf fields.
 *
 * Turns a decoded Request into a `ValidRequest` — a discriminated union of
 * plain, checked values — or throws VhsmFailure (UNSUPPORTED_VERSION,
 * BAD_REQUEST, INVALID_ARGUMENT). Handlers only ever see ValidRequest.
 * Error messages name the field, never echo its value.
 */
import {
  DIGEST_ALGORITHMS,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  PROTOCOL_VERSION,
  PUBLIC_KEY_FORMATS,
  SESSION_ID_BYTES,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  uint64ToSafeNumber,
  valuesOf,
  type OperationName,
  type pb,
} from '../proto/index.js';
import { MAX_KEY_DATA_BYTES, MAX_MAC_BYTES, MAX_SIGNATURE_BYTES } from './crypto/engine.js';
import { VhsmFailure } from './errors.js';
import { isValidKeyId, isValidLabel, isValidUsername, MAX_PASSWORD_BYTES } from './rules.js';

export const MAX_LIST_LIMIT = 100;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_SECRET_LENGTH_BYTES = 1024;

export interface ValidKeySpec {
  readonly keyType: number;
  /** '' means the server picks one. */
  readonly keyId: string;
  readonly label: string;
  /** KeyUsage values, deduplicated; empty means the type's defaults. */
  readonly usages: readonly number[];
  readonly extractable: boolean;
}

export type ValidOp =
  | { readonly op: 'login'; readonly username: string; readonly password: Uint8Array }
  | { readonly op: 'logout' }
  | { readonly op: 'generateKey'; readonly spec: ValidKeySpec; readonly lengthBytes: number }
  | { readonly op: 'importKey'; readonly spec: ValidKeySpec; readonly format: number; readonly keyData: Uint8Array }
  | { readonly op: 'listKeys'; readonly afterKeyId: string; readonly limit: number }
  | { readonly op: 'keyInfo'; readonly keyId: string }
  | { readonly op: 'deleteKey'; readonly keyId: string }
  | { readonly op: 'exportPublicKey'; readonly keyId: string; readonly format: number }
  | { readonly op: 'exportKey'; readonly keyId: string; readonly format: number }
  | { readonly op: 'sign'; readonly keyId: string; readonly algorithm: number; readonly data: Uint8Array; readonly encoding: number }
  | {
      readonly op: 'verify';
      readonly keyId: string;
      readonly algorithm: number;
      readonly data: Uint8Array;
      readonly encoding: number;
      readonly signature: Uint8Array;
    }
  | { readonly op: 'mac'; readonly keyId: string; readonly algorithm: number; readonly data: Uint8Array }
  | { readonly op: 'verifyMac'; readonly keyId: string; readonly algorithm: number; readonly data: Uint8Array; readonly mac: Uint8Array }
  | { readonly op: 'digest'; readonly algorithm: number; readonly data: Uint8Array };

export type ValidRequest = ValidOp & {
  readonly id: number;
  /** The session id, or null when the request carried none. */
  readonly session: Uint8Array | null;
};

export type OpRequest<K extends OperationName> = Extract<ValidRequest, { op: K }>;

const invalid = (message: string): VhsmFailure => new VhsmFailure('INVALID_ARGUMENT', message);

const KEY_TYPE_VALUES = valuesOf(KEY_TYPES);
const USAGE_VALUES = valuesOf(KEY_USAGES);
const SIGNATURE_VALUES = valuesOf(SIGNATURE_ALGORITHMS);
const ENCODING_VALUES = valuesOf(SIGNATURE_ENCODINGS);
const MAC_VALUES = valuesOf(MAC_ALGORITHMS);
const DIGEST_VALUES = valuesOf(DIGEST_ALGORITHMS);
const KEY_FORMAT_VALUES = valuesOf(KEY_FORMATS);
const PUBLIC_FORMAT_VALUES = valuesOf(PUBLIC_KEY_FORMATS);

/** An enum field: must be one of `allowed`, or 0 when `optional` (meaning "default"). */
function enumField(value: number | null | undefined, allowed: ReadonlySet<number>, field: string, optional: boolean): number {
  const number = value ?? 0;
  if (number === 0 && optional) return 0;
  if (!allowed.has(number)) throw invalid(`${field} is missing or not a known value`);
  return number;
}

function bytesField(value: Uint8Array | null | undefined, field: string, maxBytes: number, minBytes = 0): Uint8Array {
  const bytes = value ?? new Uint8Array(0);
  if (bytes.length < minBytes) throw invalid(`${field} is required`);
  if (bytes.length > maxBytes) throw invalid(`${field} is longer than ${maxBytes} bytes`);
  return bytes;
}

function keyIdField(value: string | null | undefined, field = 'key_id'): string {
  const keyId = value ?? '';
  if (!isValidKeyId(keyId)) throw invalid(`${field} must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}`);
  return keyId;
}

/** Data fields are bounded by the payload limit already; this only documents it. */
const MAX_DATA_BYTES = 32 * 1024;

function keySpec(spec: pb.KeySpec.$Properties | null | undefined): ValidKeySpec {
  if (!spec) throw invalid('spec is required');
  const keyType = enumField(spec.type, KEY_TYPE_VALUES, 'spec.type', false);
  const keyId = spec.keyId ?? '';
  if (keyId !== '' && !isValidKeyId(keyId)) throw invalid('spec.key_id must be empty or match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}');
  const label = spec.label ?? '';
  if (!isValidLabel(label)) throw invalid('spec.label is longer than 128 bytes or has control characters');
  const usages = new Set<number>();
  for (const usage of spec.usages ?? []) {
    if (!USAGE_VALUES.has(usage)) throw invalid('spec.usages has an unknown value');
    usages.add(usage);
  }
  return { keyType, keyId, label, usages: [...usages].sort((a, b) => a - b), extractable: spec.extractable === true };
}

function validateOp(request: pb.Request): ValidOp {
  switch (request.op) {
    case 'login': {
      const body = request.login!;
      const username = body.username ?? '';
      if (!isValidUsername(username)) throw invalid('username must match [A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}');
      return { op: 'login', username, password: bytesField(body.password, 'password', MAX_PASSWORD_BYTES, 1) };
    }
    case 'logout':
      return { op: 'logout' };
    case 'generateKey': {
      const body = request.generateKey!;
      const lengthBytes = body.lengthBytes ?? 0;
      if (lengthBytes > MAX_SECRET_LENGTH_BYTES) throw invalid(`length_bytes is larger than ${MAX_SECRET_LENGTH_BYTES}`);
      return { op: 'generateKey', spec: keySpec(body.spec), lengthBytes };
    }
    case 'importKey': {
      const body = request.importKey!;
      return {
        op: 'importKey',
        spec: keySpec(body.spec),
        format: enumField(body.format, KEY_FORMAT_VALUES, 'format', false),
        keyData: bytesField(body.keyData, 'key_data', MAX_KEY_DATA_BYTES, 1),
      };
    }
    case 'listKeys': {
      const body = request.listKeys!;
      const afterKeyId = body.afterKeyId ?? '';
      if (afterKeyId !== '' && !isValidKeyId(afterKeyId)) throw invalid('after_key_id is not a valid key id');
      const limit = body.limit ?? 0;
      if (limit > MAX_LIST_LIMIT) throw invalid(`limit is larger than ${MAX_LIST_LIMIT}`);
      return { op: 'listKeys', afterKeyId, limit: limit || DEFAULT_LIST_LIMIT };
    }
    case 'keyInfo':
      return { op: 'keyInfo', keyId: keyIdField(request.keyInfo!.keyId) };
    case 'deleteKey':
      return { op: 'deleteKey', keyId: keyIdField(request.deleteKey!.keyId) };
    case 'exportPublicKey': {
      const body = request.exportPublicKey!;
      const format = enumField(body.format, PUBLIC_FORMAT_VALUES, 'format', true) || PUBLIC_KEY_FORMATS['spki-der'];
      return { op: 'exportPublicKey', keyId: keyIdField(body.keyId), format };
    }
    case 'exportKey': {
      const body = request.exportKey!;
      return { op: 'exportKey', keyId: keyIdField(body.keyId), format: enumField(body.format, KEY_FORMAT_VALUES, 'format', false) };
    }
    case 'sign': {
      const body = request.sign!;
      return {
        op: 'sign',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, SIGNATURE_VALUES, 'algorithm', true),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
        encoding: enumField(body.encoding, ENCODING_VALUES, 'encoding', true),
      };
    }
    case 'verify': {
      const body = request.verify!;
      return {
        op: 'verify',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, SIGNATURE_VALUES, 'algorithm', true),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
        encoding: enumField(body.encoding, ENCODING_VALUES, 'encoding', true),
        signature: bytesField(body.signature, 'signature', MAX_SIGNATURE_BYTES, 1),
      };
    }
    case 'mac': {
      const body = request.mac!;
      return {
        op: 'mac',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, MAC_VALUES, 'algorithm', true),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
      };
    }
    case 'verifyMac': {
      const body = request.verifyMac!;
      return {
        op: 'verifyMac',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, MAC_VALUES, 'algorithm', true),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
        mac: bytesField(body.mac, 'mac', MAX_MAC_BYTES, 1),
      };
    }
    case 'digest': {
      const body = request.digest!;
      return {
        op: 'digest',
        algorithm: enumField(body.algorithm, DIGEST_VALUES, 'algorithm', true) || DIGEST_ALGORITHMS.sha256,
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
      };
    }
    default:
      throw new VhsmFailure('BAD_REQUEST', 'request has no operation');
  }
}

/** The request id, if it is usable (a safe integer); 0 otherwise. */
export function requestIdOf(request: pb.Request): number {
  return uint64ToSafeNumber(request.id) ?? 0;
}

export function validateRequest(request: pb.Request): ValidRequest {
  if (request.version !== PROTOCOL_VERSION) {
    throw new VhsmFailure('UNSUPPORTED_VERSION', `protocol version ${request.version} is not supported (this server speaks ${PROTOCOL_VERSION})`);
  }
  const id = uint64ToSafeNumber(request.id);
  if (id === null) throw invalid('id must be below 2^53');
  const sessionBytes = request.session ?? new Uint8Array(0);
  if (sessionBytes.length !== 0 && sessionBytes.length !== SESSION_ID_BYTES) throw invalid(`session must be ${SESSION_ID_BYTES} bytes`);
  const op = validateOp(request);
  if (op.op === 'login' && sessionBytes.length !== 0) throw invalid('login must not carry a session');
  return { ...op, id, session: sessionBytes.length ? sessionBytes : null };
}
