/**
 * Associated data for wrapped blobs: a fixed, length-prefixed binary
 * encoding of everything a blob must stay bound to. Changing any bound
 * column in the DB (or moving the blob) makes GCM refuse to open it.
 */
const encoder = new TextEncoder();

function field(bytes: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
}

/** AAD for a user's authentication key, wrapped under the password-derived master key. */
export function authKeyAad(userId: number): Buffer {
  return Buffer.concat([field(encoder.encode('vhsm/auth-key/v1')), u64(userId)]);
}

export interface KeyBinding {
  readonly userId: number;
  readonly keyId: string;
  readonly keyType: number;
  readonly usages: number;
  readonly extractable: boolean;
}

/** AAD for a user key, wrapped under the user's authentication key. */
export function userKeyAad(binding: KeyBinding): Buffer {
  return Buffer.concat([
    field(encoder.encode('vhsm/user-key/v1')),
    u64(binding.userId),
    field(encoder.encode(binding.keyId)),
    u32(binding.keyType),
    u32(binding.usages),
    Buffer.of(binding.extractable ? 1 : 0),
  ]);
}
