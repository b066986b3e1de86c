/**
 * The VHSM wire protocol: typed access to the generated protobuf code, the
 * protocol constants, and strict encode/decode helpers shared by the server
 * and the client library.
 */
import { vhsm as generated } from './gen/vhsm.js';
import type * as Types from './gen/vhsm-types.js';

/** The generated runtime namespace `vhsm.v1`, with its pbts types. */
export const v1 = (generated as unknown as typeof Types.vhsm).v1;
export type { Types };
/** Type namespace for the messages: `pb.Request`, `pb.KeyInfo`, ... */
export type { pb } from './gen/vhsm-types.js';
import type { pb } from './gen/vhsm-types.js';

/** The only protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;

/** Largest payload the kernel module carries (VHSM_PAYLOAD_MAX in the uAPI header). */
export const MAX_PAYLOAD_BYTES = 32 * 1024;

/** Length of a session id in bytes (128 random bits). */
export const SESSION_ID_BYTES = 16;

/** Why a frame was refused before any field was looked at. */
export class ProtocolDecodeError extends Error {
  override readonly name = 'ProtocolDecodeError';
}

/** A 64-bit field as protobufjs decodes it: a number, or a Long when long.js is present. */
export type Uint64Value = number | { toNumber(): number; high: number; low: number; unsigned?: boolean };

/** Converts a decoded uint64 into a number, or null when it is not a safe integer. */
export function uint64ToSafeNumber(value: Uint64Value | null | undefined): number | null {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  // Long: safe when the high word is below 2^21.
  const high = value.high >>> 0;
  if (high >= 0x200000) return null;
  return high * 0x1_0000_0000 + (value.low >>> 0);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `message` or any message nested in it carries fields this schema does not know. */
function hasUnknownFields(message: object, depth = 0): boolean {
  if (depth > 32) return true;
  const unknowns = (message as { $unknowns?: unknown[] }).$unknowns;
  if (unknowns !== undefined && unknowns.length > 0) return true;
  for (const value of Object.values(message)) {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) continue;
    const items: unknown[] = Array.isArray(value) ? value : [value];
    for (const item of items) {
      if (item !== null && typeof item === 'object' && !(item instanceof Uint8Array) && hasUnknownFields(item, depth + 1)) {
        return true;
      }
    }
  }
  return false;
}

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

/**
 * Decodes `bytes` and insists on the canonical encoding: no unknown fields
 * (which includes known field numbers with the wrong wire type), and a
 * re-encode that reproduces the input byte for byte (fields in number
 * order, minimal varints, no duplicates, at most one oneof member). One
 * accepted spelling per message leaves no room for parser differentials.
 */
function decodeStrict<T extends object>(codec: Codec<T>, bytes: Uint8Array, what: string): T {
  if (bytes.length > MAX_PAYLOAD_BYTES) throw new ProtocolDecodeError(`${what} larger than ${MAX_PAYLOAD_BYTES} bytes`);
  let message: T;
  try {
    message = codec.decode(bytes);
  } catch {
    throw new ProtocolDecodeError(`${what} is not a valid protobuf message`);
  }
  if (hasUnknownFields(message)) throw new ProtocolDecodeError(`${what} has unknown fields`);
  const again = codec.encode(message).finish();
  const canonical = sameBytes(again, bytes);
  again.fill(0); // a copy of the request: it may hold a password
  if (!canonical) throw new ProtocolDecodeError(`${what} is not canonically encoded`);
  return message;
}

export function decodeRequest(bytes: Uint8Array): pb.Request {
  return decodeStrict<pb.Request>(v1.Request, bytes, 'request');
}

export function encodeRequest(request: pb.Request.$Properties): Uint8Array {
  return v1.Request.encode(request).finish();
}

/** Responses are decoded leniently about unknown fields so newer servers can add result details. */
export function decodeResponse(bytes: Uint8Array): pb.Response {
  try {
    return v1.Response.decode(bytes);
  } catch {
    throw new ProtocolDecodeError('response is not a valid protobuf message');
  }
}

export function encodeResponse(response: pb.Response.$Properties): Uint8Array {
  return v1.Response.encode(response).finish();
}

export * from './names.js';
