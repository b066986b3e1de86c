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
  ENCRYPTION_ALGORITHMS,
  KDF_ALGORITHMS,
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
import { isValidKeyId, isValidLabel, isValidServerId, isValidUsername, MAX_OBJECT_ID_BYTES, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES } from './rules.js';

export const MAX_LIST_LIMIT = 100;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_SECRET_LENGTH_BYTES = 1024;
export const MAX_RANDOM_BYTES = 4096;
export const MAX_KDF_PARAM_BYTES = 1024;
export const MAX_PEER_PUBLIC_KEY_BYTES = 1024;
export const MAX_WRAPPING_PUBLIC_KEY_BYTES = 2048;
export const MAX_WRAPPED_KEY_BYTES = MAX_KEY_DATA_BYTES + 1024;
/** One X.509 certificate, DER (the protocol's limit). */
export const MAX_CERTIFICATE_DER_BYTES = 16 * 1024;
/** Nonces and tags are checked for their exact length by the mechanism; this only bounds them. */
const MAX_NONCE_OR_TAG_BYTES = 64;

export interface ValidKeySpec {
  readonly keyType: number;
  /** '' means the server picks one. */
  readonly keyId: string;
  readonly label: string;
  /** KeyUsage values, deduplicated; empty means the type's defaults. */
  readonly usages: readonly number[];
  readonly extractable: boolean;
}

export interface ValidKdf {
  /** KdfAlgorithm, resolved (never 0). */
  readonly algorithm: number;
  readonly salt: Uint8Array;
  readonly info: Uint8Array;
}

/** Where an exported key is wrapped to: a stored RSA key, or a caller-supplied public key. */
export type WrapTarget = { readonly kind: 'stored'; readonly keyId: string } | { readonly kind: 'public'; readonly spki: Uint8Array };

export type ValidOp =
  | { readonly op: 'login'; readonly username: string; readonly password: Uint8Array }
  | { readonly op: 'logout' }
  | { readonly op: 'changePassword'; readonly oldPassword: Uint8Array; readonly newPassword: Uint8Array }
  | { readonly op: 'generateKey'; readonly spec: ValidKeySpec; readonly lengthBytes: number }
  | { readonly op: 'importKey'; readonly spec: ValidKeySpec; readonly format: number; readonly keyData: Uint8Array }
  | { readonly op: 'listKeys'; readonly afterKeyId: string; readonly limit: number }
  | { readonly op: 'keyInfo'; readonly keyId: string }
  | { readonly op: 'deleteKey'; readonly keyId: string }
  | { readonly op: 'exportPublicKey'; readonly keyId: string; readonly format: number }
  | { readonly op: 'exportKey'; readonly keyId: string; readonly format: number }
  | { readonly op: 'listPublicObjects'; readonly username: string; readonly afterKeyId: string; readonly limit: number }
  | { readonly op: 'createCertificate'; readonly objectId: Uint8Array; readonly label: string; readonly der: Uint8Array }
  | { readonly op: 'deleteCertificate'; readonly certId: string }
  | {
      readonly op: 'sign';
      readonly keyId: string;
      readonly algorithm: number;
      readonly data: Uint8Array;
      readonly encoding: number;
      readonly prehashed: boolean;
    }
  | {
      readonly op: 'verify';
      readonly keyId: string;
      readonly algorithm: number;
      readonly data: Uint8Array;
      readonly encoding: number;
      readonly signature: Uint8Array;
      readonly prehashed: boolean;
    }
  | { readonly op: 'mac'; readonly keyId: string; readonly algorithm: number; readonly data: Uint8Array }
  | { readonly op: 'verifyMac'; readonly keyId: string; readonly algorithm: number; readonly data: Uint8Array; readonly mac: Uint8Array }
  | { readonly op: 'digest'; readonly algorithm: number; readonly data: Uint8Array }
  | { readonly op: 'encrypt'; readonly keyId: string; readonly algorithm: number; readonly plaintext: Uint8Array; readonly aad: Uint8Array }
  | {
      readonly op: 'decrypt';
      readonly keyId: string;
      readonly algorithm: number;
      readonly nonce: Uint8Array;
      readonly ciphertext: Uint8Array;
      readonly tag: Uint8Array;
      readonly aad: Uint8Array;
    }
  | {
      readonly op: 'agreeKey';
      readonly privateKeyId: string;
      readonly peerPublicKey: Uint8Array;
      readonly result: ValidKeySpec;
      readonly lengthBytes: number;
      /** null: store the raw shared secret. */
      readonly kdf: ValidKdf | null;
    }
  | { readonly op: 'deriveKey'; readonly baseKeyId: string; readonly result: ValidKeySpec; readonly lengthBytes: number; readonly kdf: ValidKdf }
  | { readonly op: 'random'; readonly length: number }
  | { readonly op: 'wrappingKey'; readonly format: number }
  | {
      readonly op: 'importWrappedKey';
      readonly spec: ValidKeySpec;
      /** '' means the default wrapping key. */
      readonly wrappingKeyId: string;
      readonly wrappedKey: Uint8Array;
      /** 0 means the type's natural format. */
      readonly format: number;
    }
  | { readonly op: 'exportWrappedKey'; readonly keyId: string; readonly target: WrapTarget; readonly format: number }
  | { readonly op: 'digestInit'; readonly algorithm: number }
  | { readonly op: 'macInit'; readonly keyId: string; readonly algorithm: number }
  | { readonly op: 'streamUpdate'; readonly streamId: number; readonly data: Uint8Array }
  | { readonly op: 'streamFinal'; readonly streamId: number; readonly data: Uint8Array; readonly expectedMac: Uint8Array | null }
  | { readonly op: 'streamAbort'; readonly streamId: number };

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
const ENCRYPTION_VALUES = valuesOf(ENCRYPTION_ALGORITHMS);
const KDF_VALUES = valuesOf(KDF_ALGORITHMS);

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

function keySpec(spec: pb.KeySpec.$Properties | null | undefined, field = 'spec'): ValidKeySpec {
  if (!spec) throw invalid(`${field} is required`);
  const keyType = enumField(spec.type, KEY_TYPE_VALUES, `${field}.type`, false);
  const keyId = spec.keyId ?? '';
  if (keyId !== '' && !isValidKeyId(keyId)) throw invalid(`${field}.key_id must be empty or match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}`);
  const label = spec.label ?? '';
  if (!isValidLabel(label)) throw invalid(`${field}.label is longer than 128 bytes or has control characters`);
  const usages = new Set<number>();
  for (const usage of spec.usages ?? []) {
    if (!USAGE_VALUES.has(usage)) throw invalid(`${field}.usages has an unknown value`);
    usages.add(usage);
  }
  return { keyType, keyId, label, usages: [...usages].sort((a, b) => a - b), extractable: spec.extractable === true };
}

function kdfField(kdf: pb.Kdf.$Properties | null | undefined, field: string): ValidKdf {
  return {
    algorithm: enumField(kdf?.algorithm, KDF_VALUES, `${field}.algorithm`, true) || KDF_ALGORITHMS['hkdf-sha256'],
    salt: bytesField(kdf?.salt, `${field}.salt`, MAX_KDF_PARAM_BYTES),
    info: bytesField(kdf?.info, `${field}.info`, MAX_KDF_PARAM_BYTES),
  };
}

function lengthField(value: number | null | undefined): number {
  const lengthBytes = value ?? 0;
  if (lengthBytes > MAX_SECRET_LENGTH_BYTES) throw invalid(`length_bytes is larger than ${MAX_SECRET_LENGTH_BYTES}`);
  return lengthBytes;
}

function usernameField(value: string | null | undefined): string {
  const username = value ?? '';
  if (!isValidUsername(username)) throw invalid('username must match [A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}');
  return username;
}

function passwordField(value: Uint8Array | null | undefined, field: string): Uint8Array {
  return bytesField(value, field, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES);
}

/** A page request over key ids: the cursor (empty: first page) and the page size (0: default). */
function pageFields(body: { afterKeyId?: string | null; limit?: number | null }): { afterKeyId: string; limit: number } {
  const afterKeyId = body.afterKeyId ?? '';
  if (afterKeyId !== '' && !isValidKeyId(afterKeyId)) throw invalid('after_key_id is not a valid key id');
  const limit = body.limit ?? 0;
  if (limit > MAX_LIST_LIMIT) throw invalid(`limit is larger than ${MAX_LIST_LIMIT}`);
  return { afterKeyId, limit: limit || DEFAULT_LIST_LIMIT };
}

function streamIdField(value: number | null | undefined): number {
  const streamId = value ?? 0;
  if (streamId === 0) throw invalid('stream_id is required');
  return streamId;
}

function validateOp(request: pb.Request): ValidOp {
  switch (request.op) {
    case 'login': {
      const body = request.login!;
      return { op: 'login', username: usernameField(body.username), password: passwordField(body.password, 'password') };
    }
    case 'logout':
      return { op: 'logout' };
    case 'changePassword': {
      const body = request.changePassword!;
      return {
        op: 'changePassword',
        oldPassword: passwordField(body.oldPassword, 'old_password'),
        newPassword: passwordField(body.newPassword, 'new_password'),
      };
    }
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
    case 'listKeys':
      return { op: 'listKeys', ...pageFields(request.listKeys!) };
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
    case 'listPublicObjects': {
      const body = request.listPublicObjects!;
      return { op: 'listPublicObjects', username: usernameField(body.username), ...pageFields(body) };
    }
    case 'createCertificate': {
      const body = request.createCertificate!;
      const label = body.label ?? '';
      if (!isValidLabel(label)) throw invalid('label is longer than 128 bytes or has control characters');
      return {
        op: 'createCertificate',
        objectId: bytesField(body.id, 'id', MAX_OBJECT_ID_BYTES),
        label,
        der: bytesField(body.der, 'der', MAX_CERTIFICATE_DER_BYTES, 1),
      };
    }
    case 'deleteCertificate': {
      const certId = request.deleteCertificate!.certId ?? '';
      if (!isValidServerId(certId)) throw invalid('cert_id must be 32 lowercase hex characters');
      return { op: 'deleteCertificate', certId };
    }
    case 'sign': {
      const body = request.sign!;
      return {
        op: 'sign',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, SIGNATURE_VALUES, 'algorithm', true),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
        encoding: enumField(body.encoding, ENCODING_VALUES, 'encoding', true),
        prehashed: body.prehashed === true,
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
        prehashed: body.prehashed === true,
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
    case 'encrypt': {
      const body = request.encrypt!;
      return {
        op: 'encrypt',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, ENCRYPTION_VALUES, 'algorithm', true),
        plaintext: bytesField(body.plaintext, 'plaintext', MAX_DATA_BYTES),
        aad: bytesField(body.aad, 'aad', MAX_DATA_BYTES),
      };
    }
    case 'decrypt': {
      const body = request.decrypt!;
      return {
        op: 'decrypt',
        keyId: keyIdField(body.keyId),
        algorithm: enumField(body.algorithm, ENCRYPTION_VALUES, 'algorithm', true),
        nonce: bytesField(body.nonce, 'nonce', MAX_NONCE_OR_TAG_BYTES),
        ciphertext: bytesField(body.ciphertext, 'ciphertext', MAX_DATA_BYTES),
        tag: bytesField(body.tag, 'tag', MAX_NONCE_OR_TAG_BYTES),
        aad: bytesField(body.aad, 'aad', MAX_DATA_BYTES),
      };
    }
    case 'agreeKey': {
      const body = request.agreeKey!;
      return {
        op: 'agreeKey',
        privateKeyId: keyIdField(body.privateKeyId, 'private_key_id'),
        peerPublicKey: bytesField(body.peerPublicKey, 'peer_public_key', MAX_PEER_PUBLIC_KEY_BYTES, 1),
        result: keySpec(body.result, 'result'),
        lengthBytes: lengthField(body.lengthBytes),
        kdf: body.kdf ? kdfField(body.kdf, 'kdf') : null,
      };
    }
    case 'deriveKey': {
      const body = request.deriveKey!;
      return {
        op: 'deriveKey',
        baseKeyId: keyIdField(body.baseKeyId, 'base_key_id'),
        result: keySpec(body.result, 'result'),
        lengthBytes: lengthField(body.lengthBytes),
        kdf: kdfField(body.kdf, 'kdf'),
      };
    }
    case 'random': {
      const length = request.random!.length ?? 0;
      if (length < 1 || length > MAX_RANDOM_BYTES) throw invalid(`length must be 1..${MAX_RANDOM_BYTES}`);
      return { op: 'random', length };
    }
    case 'wrappingKey': {
      const format = enumField(request.wrappingKey!.format, PUBLIC_FORMAT_VALUES, 'format', true) || PUBLIC_KEY_FORMATS['spki-der'];
      return { op: 'wrappingKey', format };
    }
    case 'importWrappedKey': {
      const body = request.importWrappedKey!;
      const wrappingKeyId = body.wrappingKeyId ?? '';
      if (wrappingKeyId !== '' && !isValidKeyId(wrappingKeyId)) throw invalid('wrapping_key_id must be empty or a valid key id');
      return {
        op: 'importWrappedKey',
        spec: keySpec(body.spec),
        wrappingKeyId,
        wrappedKey: bytesField(body.wrappedKey, 'wrapped_key', MAX_WRAPPED_KEY_BYTES, 1),
        format: enumField(body.format, KEY_FORMAT_VALUES, 'format', true),
      };
    }
    case 'exportWrappedKey': {
      const body = request.exportWrappedKey!;
      const storedId = body.wrappingKeyId ?? '';
      const spki = bytesField(body.wrappingPublicKey, 'wrapping_public_key', MAX_WRAPPING_PUBLIC_KEY_BYTES);
      if ((storedId === '') === (spki.length === 0)) throw invalid('give exactly one of wrapping_key_id and wrapping_public_key');
      const target: WrapTarget = storedId ? { kind: 'stored', keyId: keyIdField(storedId, 'wrapping_key_id') } : { kind: 'public', spki };
      return { op: 'exportWrappedKey', keyId: keyIdField(body.keyId), target, format: enumField(body.format, KEY_FORMAT_VALUES, 'format', true) };
    }
    case 'digestInit':
      return {
        op: 'digestInit',
        algorithm: enumField(request.digestInit!.algorithm, DIGEST_VALUES, 'algorithm', true) || DIGEST_ALGORITHMS.sha256,
      };
    case 'macInit': {
      const body = request.macInit!;
      return { op: 'macInit', keyId: keyIdField(body.keyId), algorithm: enumField(body.algorithm, MAC_VALUES, 'algorithm', true) };
    }
    case 'streamUpdate': {
      const body = request.streamUpdate!;
      return { op: 'streamUpdate', streamId: streamIdField(body.streamId), data: bytesField(body.data, 'data', MAX_DATA_BYTES) };
    }
    case 'streamFinal': {
      const body = request.streamFinal!;
      const expectedMac = bytesField(body.expectedMac, 'expected_mac', MAX_MAC_BYTES);
      return {
        op: 'streamFinal',
        streamId: streamIdField(body.streamId),
        data: bytesField(body.data, 'data', MAX_DATA_BYTES),
        expectedMac: expectedMac.length ? expectedMac : null,
      };
    }
    case 'streamAbort':
      return { op: 'streamAbort', streamId: streamIdField(request.streamAbort!.streamId) };
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
