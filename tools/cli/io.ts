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

function readAllFromFd(fd: number, what: string, name: string): Buffer {
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
    if (total > MAX_READ_BYTES) throw tooLarge(what, name);
  }
  return Buffer.concat(chunks);
}

const tooLarge = (what: string, name: string) =>
  inputError(`${what} from ${name} is too large: one request carries at most ${MAX_DATA_BYTES} bytes`);

async function readStdin(what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of process.stdin) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      chunks.push(bytes);
      total += bytes.length;
      if (total > MAX_READ_BYTES) throw tooLarge(what, 'standard input');
    }
  } catch (error) {
    if (error instanceof Error && 'exitCode' in error) throw error;
    throw ioError(`cannot read ${what} from standard input: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a whole input: a file path, or '-' for standard input. Refuses
 * inputs larger than any request could carry.
 */
export async function readInput(path: string, what: string): Promise<Buffer> {
  if (path === '-') return readStdin(what);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? String(error));
    throw ioError(`cannot read ${what} file ${path}: ${why}`);
  }
  try {
    if (fstatSync(fd).isDirectory()) throw ioError(`cannot read ${what} file ${path}: it is a directory`);
    return readAllFromFd(fd, what, path);
  } finally {
    closeSync(fd);
  }
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
