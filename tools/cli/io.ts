/**
 * Binary-safe input and output for the `vhsm` CLI: files or stdin in,
 * files or stdout out, hex / base64 / raw encodings.
 */
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { VHSM_PAYLOAD_MAX } from '../../netlink/vhsm-uapi.js';
import { inputError, ioError } from './errors.js';

export const ENCODINGS = ['hex', 'base64', 'raw'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** Largest data one request can carry (the transport's limit; headers make the real one a little smaller). */
export const MAX_DATA_BYTES = VHSM_PAYLOAD_MAX;

/** Reading more than this is pointless: even hex of a full payload is smaller. */
const MAX_READ_BYTES = 4 * VHSM_PAYLOAD_MAX + 1024;

/**
 * Streamed inputs (digest, mac, verify-mac) have no size limit when raw;
 * hex or base64 text is decoded in memory, so it is capped at this.
 */
export const MAX_ENCODED_STREAM_BYTES = 256 * 1024 * 1024;

/** AEAD framing (see frameCiphertext): 12-byte nonce, 16-byte tag. */
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes `text` (hex or base64, whitespace ignored) or passes raw bytes through. */
export function decodeBytes(data: Uint8Array, encoding: Encoding, what: string): Uint8Array {
  if (encoding === 'raw') return data;
  const text = Buffer.from(data).toString('latin1').replace(/\s+/g, '');
  const hint = `(use --${what === 'data' ? 'in-' : ''}encoding to say how it is encoded)`;
  if (encoding === 'hex') {
    if (!HEX.test(text)) throw inputError(`${what} is not valid hex ${hint}`);
    return Buffer.from(text, 'hex');
  }
  const bare = text.replace(/=+$/, '');
  if (!BASE64.test(text) || bare.length % 4 === 1) throw inputError(`${what} is not valid base64 ${hint}`);
  return Buffer.from(bare.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Bytes as the user asked to see them: hex/base64 text with a newline, or the raw bytes. */
export function encodeBytes(bytes: Uint8Array, encoding: Encoding): Buffer {
  if (encoding === 'raw') return Buffer.from(bytes);
  return Buffer.from(`${Buffer.from(bytes).toString(encoding)}\n`);
}

/** A JSON-safe string for bytes: hex or base64 (raw cannot go into JSON). */
export function jsonBytes(bytes: Uint8Array, encoding: Encoding): string {
  return Buffer.from(bytes).toString(encoding === 'base64' ? 'base64' : 'hex');
}

function readAllFromFd(fd: number, what: string, name: string, maxBytes = MAX_READ_BYTES): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.alloc(64 * 1024);
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (error) {
      throw ioError(`cannot read ${what} from ${name}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
    total += n;
    if (total > maxBytes) throw tooLarge(what, name, maxBytes);
  }
  return Buffer.concat(chunks);
}

const tooLarge = (what: string, name: string, maxBytes: number) =>
  maxBytes > MAX_READ_BYTES
    ? inputError(`${what} from ${name} is too large: hex or base64 input is decoded in memory, at most ${maxBytes} bytes (give it raw)`)
    : inputError(`${what} from ${name} is too large: one request carries at most ${MAX_DATA_BYTES} bytes`);

async function readStdin(what: string, maxBytes = MAX_READ_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of process.stdin) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      chunks.push(bytes);
      total += bytes.length;
      if (total > maxBytes) throw tooLarge(what, 'standard input', maxBytes);
    }
  } catch (error) {
    if (error instanceof Error && 'exitCode' in error) throw error;
    throw ioError(`cannot read ${what} from standard input: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return Buffer.concat(chunks);
}

function openFile(path: string, what: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? String(error));
    throw ioError(`cannot read ${what} file ${path}: ${why}`);
  }
  if (fstatSync(fd).isDirectory()) {
    closeSync(fd);
    throw ioError(`cannot read ${what} file ${path}: it is a directory`);
  }
  return fd;
}

/**
 * Reads a whole input: a file path, or '-' for standard input. Refuses
 * inputs larger than any request could carry (or than `maxBytes`).
 */
export async function readInput(path: string, what: string, maxBytes = MAX_READ_BYTES): Promise<Buffer> {
  if (path === '-') return readStdin(what, maxBytes);
  const fd = openFile(path, what);
  try {
    return readAllFromFd(fd, what, path, maxBytes);
  } finally {
    closeSync(fd);
  }
}

/**
 * Data of any size, read as the operation consumes it: the first chunk is
 * read up front (so a small input is complete before connecting, and a
 * missing file fails before the password prompt), the rest on demand.
 */
export interface DataInput {
  /** The first chunk; all of the data when `complete`. */
  readonly head: Uint8Array;
  /** True when `head` is all there is (`rest()` yields nothing). */
  readonly complete: boolean;
  /** The chunks after `head`, each `chunkBytes` long but the last. Iterate once. */
  rest(): AsyncGenerator<Uint8Array>;
}

/** Data already in memory, as a DataInput. */
export function completeInput(data: Uint8Array): DataInput {
  return { head: data, complete: true, async *rest() {} };
}

async function* fileChunks(fd: number, path: string, what: string, size: number): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      const chunk = Buffer.alloc(size);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, size, null);
      } catch (error) {
        throw ioError(`cannot read ${what} from ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      if (n === 0) return;
      yield chunk.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

async function* stdinChunks(what: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of process.stdin) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
  } catch (error) {
    throw ioError(`cannot read ${what} from standard input: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** Re-cuts a byte stream into chunks of exactly `size` bytes (the last may be shorter; none when empty). */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of source) {
    let rest = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (pendingBytes + rest.length >= size) {
      const take = size - pendingBytes;
      yield Buffer.concat([...pending, rest.subarray(0, take)]);
      rest = rest.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (rest.length) {
      pending.push(rest);
      pendingBytes += rest.length;
    }
  }
  if (pendingBytes) yield Buffer.concat(pending);
}

/**
 * Opens an input (a file, or '-' for stdin) to be read in `chunkBytes`
 * chunks. Stdin on a terminal is read whole first: the password prompt
 * comes after it.
 */
export async function openInputChunks(path: string, what: string, chunkBytes: number): Promise<DataInput> {
  if (path === '-' && process.stdin.isTTY) return completeInput(await readStdin(what, MAX_ENCODED_STREAM_BYTES));
  const source = path === '-' ? stdinChunks(what) : fileChunks(openFile(path, what), path, what, chunkBytes);
  const chunks = rechunk(source, chunkBytes);
  const first = await chunks.next();
  if (first.done) return completeInput(new Uint8Array(0));
  const second = await chunks.next();
  if (second.done) return completeInput(first.value);
  return {
    head: first.value,
    complete: false,
    async *rest() {
      yield second.value;
      yield* chunks;
    },
  };
}

/**
 * Encrypt output as one byte string: nonce ‖ ciphertext ‖ tag. AEAD
 * (aes-256-gcm, chacha20-poly1305): a 12-byte nonce first, the 16-byte tag
 * last. RSA-OAEP has neither: the framing is the ciphertext alone.
 */
export function frameCiphertext(sealed: { nonce: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array }): Buffer {
  return Buffer.concat([sealed.nonce, sealed.ciphertext, sealed.tag]);
}

/** The inverse of frameCiphertext; `aead` says whether there is a nonce and a tag. */
export function unframeCiphertext(framed: Uint8Array, aead: boolean): { nonce: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array } {
  const empty = new Uint8Array(0);
  if (!aead) return { nonce: empty, ciphertext: framed, tag: empty };
  if (framed.length < AEAD_NONCE_BYTES + AEAD_TAG_BYTES) {
    throw inputError(`the ciphertext is ${framed.length} bytes: AEAD ciphertexts are nonce (12) ‖ ciphertext ‖ tag (16), at least 28 bytes`);
  }
  return {
    nonce: framed.subarray(0, AEAD_NONCE_BYTES),
    ciphertext: framed.subarray(AEAD_NONCE_BYTES, framed.length - AEAD_TAG_BYTES),
    tag: framed.subarray(framed.length - AEAD_TAG_BYTES),
  };
}

/** Writes the result to a file (created 0600 when `secret`), or to stdout. */
export function writeOutput(path: string | undefined, data: Buffer, secret = false): void {
  if (path === undefined || path === '-') {
    process.stdout.write(data);
    return;
  }
  try {
    writeFileSync(path, data, { mode: secret ? 0o600 : 0o644 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'EACCES' ? 'permission denied' : (code ?? String(error));
    throw ioError(`cannot write ${path}: ${why}`);
  }
}

/** PEM ("-----BEGIN <label>-----") to DER, or undefined when `data` is not PEM. */
export function pemToDer(data: Uint8Array, label: string): Uint8Array | undefined {
  const text = Buffer.from(data).toString('latin1');
  const match = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(text);
  return match ? Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64') : undefined;
}

export function derToPem(der: Uint8Array, label: string): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
