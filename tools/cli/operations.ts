/**
 * What the `vhsm` CLI can do, as a table. Each row is one subcommand: its
 * yargs command string, options, which inputs it reads, and what it does
 * with a logged-in session. tools/vhsm.ts does the rest for every row
 * (credentials, connect, login, inputs, output, --json, exit codes).
 *
 * Adding a mechanism that the client library gains is one row: see
 * `random <count>` below for the smallest.
 *
 * Algorithm choices come from the protocol's name tables (proto/names.ts),
 * so new rows there show up in --help and are accepted without a change here.
 */
import type { Options, PositionalOptions } from 'yargs';
import type { Ciphertext, DerivedKey, KeyInfo, VhsmClient, VhsmSession, VhsmStream } from '../../client/index.js';
import {
  DIGEST_ALGORITHMS,
  ENCRYPTION_ALGORITHMS,
  KDF_ALGORITHMS,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  PUBLIC_KEY_FORMATS,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  type DigestAlgorithmName,
  type EncryptionAlgorithmName,
  type KdfAlgorithmName,
  type KeyFormatName,
  type KeyTypeName,
  type KeyUsageName,
  type MacAlgorithmName,
  type PublicKeyFormatName,
  type SignatureAlgorithmName,
  type SignatureEncodingName,
} from '../../proto/names.js';
import { KEY_ID_PATTERN, isValidKeyId } from '../../server/rules.js';
import { inputError, usageError } from './errors.js';
import { derToPem, frameCiphertext, jsonBytes, pemToDer, unframeCiphertext, type DataInput, type Encoding } from './io.js';

/** What every row gets: the command line and its inputs. */
export interface InputContext {
  /** Parsed command line (yargs camelCase keys). */
  readonly args: Readonly<Record<string, unknown>>;
  /** The main input (--in FILE or stdin), decoded with --in-encoding; empty when the row reads none (or streams it: see `input`). */
  readonly data: Uint8Array;
  /** The main input as chunks: rows with `stream` read it here (complete, and equal to `data`, for the others). */
  readonly input: DataInput;
  /** The row's file inputs (e.g. --sig) by option name: decoded with --encoding, or as they are; absent when optional and not given. */
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly encoding: Encoding;
}

/** A row run in a logged-in session. */
export interface OpContext extends InputContext {
  readonly session: VhsmSession;
  /** Rows with `newPassword`: the current password (the login's) and the new one. Zeroed after the row. */
  readonly passwords?: { readonly current: Uint8Array; readonly replacement: Uint8Array };
}

/** A row run without logging in (public objects): the connection and the user named. */
export interface PublicOpContext extends InputContext {
  readonly client: VhsmClient;
  readonly user: string;
}

export type OpResult =
  /**
   * Binary output: written in --encoding; under --json as `field` (hex or
   * base64), or as `jsonFields` instead when given (e.g. nonce, ciphertext, tag).
   */
  | {
      readonly kind: 'bytes';
      readonly field: string;
      readonly bytes: Uint8Array;
      readonly json?: Record<string, unknown>;
      readonly jsonFields?: Readonly<Record<string, Uint8Array>>;
      readonly secret?: boolean;
    }
  /** Text output, or `json` under --json. */
  | { readonly kind: 'text'; readonly text: string; readonly json: unknown; readonly secret?: boolean }
  /** verify-style: prints valid/invalid, exits 0 or 1. */
  | { readonly kind: 'verdict'; readonly valid: boolean; readonly json: Record<string, unknown> };

interface SpecBase {
  /** yargs command string; a `<key>` positional is the key id. */
  readonly command: string;
  readonly aliases?: readonly string[];
  /** Subcommand group ('keys' → `vhsm keys ...`); none for top-level commands. */
  readonly group?: CommandGroup;
  readonly describe: string;
  readonly positionals?: Readonly<Record<string, PositionalOptions>>;
  readonly options?: Readonly<Record<string, Options>>;
  /** Reads the main input from --in FILE or stdin; the text says what it is. */
  readonly data?: string;
  /** File inputs: option name → what it is (a required file in --encoding), or a FileInput. */
  readonly files?: Readonly<Record<string, string | FileInput>>;
  /** The data may be of any size: the row reads `input` chunk by chunk (raw) instead of a 32 KiB `data`. */
  readonly stream?: boolean;
  /** Produces binary output (so --encoding applies to it). */
  readonly binaryOutput?: boolean;
  readonly examples?: readonly (readonly [string, string])[];
}

/** A row that logs in first (the default). */
export interface SessionOperationSpec extends SpecBase {
  readonly login?: true;
  /** Also asks for a new password (twice on a terminal; line 2 of --password-file/--password-stdin). */
  readonly newPassword?: true;
  run(context: OpContext): Promise<OpResult>;
}

/** A row that needs no password: listing public objects. */
export interface PublicOperationSpec extends SpecBase {
  readonly login: false;
  run(context: PublicOpContext): Promise<OpResult>;
}

export type OperationSpec = SessionOperationSpec | PublicOperationSpec;

/** `vhsm keys ...`, `vhsm certs ...`: the subcommand groups and what --help says of them. */
export const COMMAND_GROUPS = { keys: 'manage keys', certs: 'manage X.509 certificates (PKCS#11 objects next to the keys)' } as const;
export type CommandGroup = keyof typeof COMMAND_GROUPS;

export interface FileInput {
  readonly what: string;
  /** Read as they are (PEM or DER keys, AAD), not decoded with --encoding. */
  readonly asIs?: boolean;
  /** Default true. */
  readonly required?: boolean;
}

/** A row's file input with its defaults filled in. */
export function fileInput(file: string | FileInput): { what: string; asIs: boolean; required: boolean } {
  if (typeof file === 'string') return { what: file, asIs: false, required: true };
  return { what: file.what, asIs: file.asIs === true, required: file.required !== false };
}

const names = (table: Record<string, number>): string[] => Object.keys(table);

export const bytes = (field: string, value: Uint8Array, json: Record<string, unknown> = {}, secret = false): OpResult => ({
  kind: 'bytes',
  field,
  bytes: value,
  json,
  secret,
});

export const text = (value: string, json: unknown): OpResult => ({ kind: 'text', text: value, json });

const keyArg = (args: Readonly<Record<string, unknown>>): string => String(args.key);

function keyJson(info: KeyInfo): Record<string, unknown> {
  return {
    keyId: info.keyId,
    type: info.type,
    label: info.label,
    usages: info.usages,
    extractable: info.extractable,
    lengthBytes: info.lengthBytes,
    createdAt: info.createdAt.toISOString(),
    lastUsedAt: info.lastUsedAt ? info.lastUsedAt.toISOString() : null,
    useCount: info.useCount,
  };
}

function keyText(info: KeyInfo): string {
  const rows: [string, string][] = [
    ['key id', info.keyId],
    ['type', info.type],
    ['label', info.label || '-'],
    ['usages', info.usages.join(', ') || '-'],
    ['extractable', info.extractable ? 'yes' : 'no'],
    ...(info.lengthBytes ? [['length', `${info.lengthBytes} bytes`] as [string, string]] : []),
    ['created', info.createdAt.toISOString()],
    ['last used', info.lastUsedAt ? info.lastUsedAt.toISOString() : 'never'],
    ['uses', String(info.useCount)],
  ];
  return rows.map(([name, value]) => `${`${name}:`.padEnd(13)}${value}`).join('\n');
}

/** Rows under a header, each column as wide as its widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function keyTable(keys: readonly KeyInfo[]): string {
  if (keys.length === 0) return 'no keys';
  const header = ['KEY ID', 'TYPE', 'USAGES', 'EXTRACTABLE', 'CREATED', 'USES', 'LABEL'];
  return table(
    header,
    keys.map((k) => [k.keyId, k.type, k.usages.join(',') || '-', k.extractable ? 'yes' : 'no', k.createdAt.toISOString(), String(k.useCount), k.label]),
  );
}

/** Options shared by generate and import. */
const KEY_SPEC_OPTIONS: Readonly<Record<string, Options>> = {
  type: { choices: names(KEY_TYPES), demandOption: true, describe: 'key type' },
  id: { type: 'string', describe: 'key id, [A-Za-z0-9][A-Za-z0-9._:-]{0,63} (default: the server picks 32 hex digits)' },
  label: { type: 'string', describe: 'free text, up to 128 bytes' },
  usage: { choices: names(KEY_USAGES), array: true, describe: "allowed usage, repeatable (default: the type's: sign+verify, or mac)" },
  extractable: { type: 'boolean', default: false, describe: 'allow `vhsm keys export` (default: the key never leaves the server)' },
};

function keySpec(args: Readonly<Record<string, unknown>>) {
  const keyId = args.id as string | undefined;
  if (keyId !== undefined && !isValidKeyId(keyId)) throw usageError(`--id must match ${KEY_ID_PATTERN.source.slice(1, -1)}, got '${keyId}'`);
  return {
    type: args.type as KeyTypeName,
    ...(keyId !== undefined && { keyId }),
    ...(args.label !== undefined && { label: String(args.label) }),
    ...(args.usage !== undefined && { usages: args.usage as KeyUsageName[] }),
    extractable: args.extractable === true,
  };
}

const keyResult = (info: KeyInfo): OpResult => text(info.keyId, keyJson(info));

/** `pem`/`der` as short names for the SPKI formats. */
const PUBKEY_ALIASES: Readonly<Record<string, PublicKeyFormatName>> = { pem: 'spki-pem', der: 'spki-der' };
/** Export formats: the protocol's, plus PKCS#8 PEM made here from the DER. */
const EXPORT_PEM = 'pkcs8-pem';

const signOptions = (args: Readonly<Record<string, unknown>>) => ({
  ...(args.algorithm !== undefined && { algorithm: args.algorithm as SignatureAlgorithmName }),
  ...(args.format !== undefined && { encoding: args.format as SignatureEncodingName }),
  ...(args.prehashed === true && { prehashed: true }),
});

const SIGN_OPTIONS: Readonly<Record<string, Options>> = {
  algorithm: {
    choices: names(SIGNATURE_ALGORITHMS),
    describe:
      "signature algorithm (default: the key type's); ecdsa-digest: the data is a digest of 1..64 bytes (PKCS#11 CKM_ECDSA); " +
      'rsa-pkcs1-raw: PKCS#1 v1.5 over the data as given, e.g. a DigestInfo (CKM_RSA_PKCS)',
  },
  format: { choices: names(SIGNATURE_ENCODINGS), describe: 'ECDSA signature format: der (ASN.1, as openssl) or raw (r||s, as JOSE); default der' },
  prehashed: {
    type: 'boolean',
    describe: "ECDSA and RSA with a named hash: the data is the digest (the algorithm's hash length: 32/48/64 bytes), not the message",
  },
};

/**
 * A digest or MAC over the row's input: one request when it fits, else a
 * stream on the server fed chunk by chunk as the input is read.
 */
async function overInput<T>(
  input: DataInput,
  oneShot: (data: Uint8Array) => Promise<T>,
  open: () => Promise<VhsmStream>,
  finish: (stream: VhsmStream, last: Uint8Array) => Promise<T>,
): Promise<T> {
  if (input.complete) return oneShot(input.head);
  const stream = await open();
  try {
    let pending = input.head;
    for await (const chunk of input.rest()) {
      await stream.update(pending);
      pending = chunk;
    }
    return await finish(stream, pending);
  } catch (error) {
    if (stream.open) await stream.abort().catch(() => undefined);
    throw error;
  }
}

const HEX_OPTION = /^(?:[0-9a-fA-F]{2})*$/;

/** A byte string given in hex on the command line (--aad, --salt, --info). */
function hexOption(args: Readonly<Record<string, unknown>>, name: string, what: string): Uint8Array | undefined {
  const value = args[name];
  if (value === undefined) return undefined;
  const hex = String(value);
  if (!HEX_OPTION.test(hex)) throw usageError(`--${name} is ${what} in hex (an even number of hex digits), got '${hex}'`);
  return Buffer.from(hex, 'hex');
}

/** An SPKI public key file: PEM or DER (or the raw point / 32 bytes, passed as they are). */
const publicKeyFile = (bytes: Uint8Array): Uint8Array => pemToDer(bytes, 'PUBLIC KEY') ?? bytes;

const ENCRYPT_OPTIONS: Readonly<Record<string, Options>> = {
  algorithm: { choices: names(ENCRYPTION_ALGORITHMS), describe: "default: the key type's (aes-256-gcm, chacha20-poly1305, rsa-oaep-sha256)" },
  aad: { type: 'string', describe: 'AEAD associated data, hex: authenticated, not encrypted; decrypt needs the same' },
};
const AAD_FILE: Readonly<Record<string, FileInput>> = { 'aad-file': { what: 'the associated data (as it is)', asIs: true, required: false } };

function encryptOptions(args: Readonly<Record<string, unknown>>, files: Readonly<Record<string, Uint8Array>>) {
  const hex = hexOption(args, 'aad', 'the associated data');
  if (hex !== undefined && files['aad-file'] !== undefined) throw usageError('give at most one of --aad and --aad-file');
  const aad = hex ?? files['aad-file'];
  return {
    ...(args.algorithm !== undefined && { algorithm: args.algorithm as EncryptionAlgorithmName }),
    ...(aad !== undefined && { aad }),
  };
}

const AEAD_KEY_TYPES: ReadonlySet<string> = new Set(['aes-256', 'chacha20']);
const CIPHERTEXT_FORMATS = ['framed', 'json'] as const;

/** The object `vhsm encrypt --json` prints, back as a Ciphertext. */
function sealedFromJson(data: Uint8Array): { sealed: Ciphertext; algorithm?: EncryptionAlgorithmName } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    throw inputError('the ciphertext is not JSON: --in-format json takes what `vhsm encrypt --json` prints');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw inputError('the ciphertext JSON is not an object with nonce, ciphertext and tag');
  const object = value as Record<string, unknown>;
  const encoding = object.encoding ?? 'hex';
  if (encoding !== 'hex' && encoding !== 'base64') throw inputError(`the ciphertext JSON has encoding ${JSON.stringify(encoding)}: hex or base64`);
  const field = (name: string, required: boolean): Uint8Array => {
    const text = object[name];
    if (text === undefined && !required) return new Uint8Array(0);
    if (typeof text !== 'string') throw inputError(`the ciphertext JSON has no "${name}" string`);
    const bytes = Buffer.from(text, encoding);
    if (Buffer.from(bytes).toString(encoding).replace(/=+$/, '') !== text.replace(/=+$/, '')) throw inputError(`"${name}" in the ciphertext JSON is not valid ${encoding}`);
    return bytes;
  };
  const algorithm = object.algorithm;
  if (algorithm !== undefined && !(typeof algorithm === 'string' && algorithm in ENCRYPTION_ALGORITHMS)) {
    throw inputError(`the ciphertext JSON names an unknown algorithm ${JSON.stringify(algorithm)}`);
  }
  return {
    sealed: { nonce: field('nonce', false), ciphertext: field('ciphertext', true), tag: field('tag', false) },
    ...(algorithm !== undefined && { algorithm: algorithm as EncryptionAlgorithmName }),
  };
}

/** Result key types of agree and derive (secret keys). */
const DERIVED_TYPES = ['secret', 'aes-256', 'chacha20', 'hmac'] as const;

const DERIVED_KEY_OPTIONS: Readonly<Record<string, Options>> = {
  id: KEY_SPEC_OPTIONS.id!,
  label: KEY_SPEC_OPTIONS.label!,
  usage: { choices: names(KEY_USAGES), array: true, describe: "allowed usage of the new key, repeatable (default: the type's)" },
  extractable: {
    type: 'boolean',
    default: false,
    describe: 'the material comes back (in --json, and later with `vhsm keys export`); default: it never leaves the server',
  },
  length: { type: 'number', describe: "length of the new key in bytes (default: the type's, 32)" },
  kdf: { choices: names(KDF_ALGORITHMS), describe: 'key derivation function (the only one: hkdf-sha256)' },
  salt: { type: 'string', describe: 'HKDF salt, hex (up to 1 KiB; default none)' },
  info: { type: 'string', describe: 'HKDF info (context), hex (up to 1 KiB; default none)' },
};

/** The new key's spec and KDF from the command line; `kdf` undefined when none was asked for. */
function derivedSpec(args: Readonly<Record<string, unknown>>, alwaysKdf: boolean) {
  const spec = keySpec(args);
  const length = args.length === undefined ? undefined : Number(args.length);
  if (length !== undefined && !(Number.isInteger(length) && length > 0)) throw usageError('--length is a positive number of bytes');
  const salt = hexOption(args, 'salt', 'the HKDF salt');
  const info = hexOption(args, 'info', 'the HKDF info');
  const useKdf = alwaysKdf || args.kdf !== undefined || salt !== undefined || info !== undefined;
  return {
    ...spec,
    ...(length !== undefined && { lengthBytes: length }),
    ...(useKdf && {
      kdf: {
        algorithm: (args.kdf ?? 'hkdf-sha256') as KdfAlgorithmName,
        ...(salt !== undefined && { salt }),
        ...(info !== undefined && { info }),
      },
    }),
  };
}

/** agree/derive: the new key's id (text) or info; the material too under --json when it came back. */
function derivedResult(derived: DerivedKey, encoding: Encoding): OpResult {
  const json = keyJson(derived.key);
  if (!derived.material) return keyResult(derived.key);
  return {
    kind: 'text',
    text: derived.key.keyId,
    json: { ...json, material: jsonBytes(derived.material, encoding), encoding: encoding === 'base64' ? 'base64' : 'hex' },
    secret: true,
  };
}

const MAC_OPTIONS: Readonly<Record<string, Options>> = {
  algorithm: { choices: names(MAC_ALGORITHMS), describe: 'MAC algorithm (default hmac-sha256)' },
};

const macOptions = (args: Readonly<Record<string, unknown>>) => (args.algorithm === undefined ? {} : { algorithm: args.algorithm as MacAlgorithmName });

export const OPERATIONS: readonly OperationSpec[] = [
  {
    command: 'login',
    describe: 'check the credentials from this container (log in, then out)',
    run: async ({ session }) =>
      text(`login ok: ${session.username} may use the VHSM from this container`, { user: session.username, loggedIn: true, idleTimeoutMs: session.idleTimeoutMs }),
  },
  {
    command: 'passwd',
    describe: "change the user's password: asks for the current one, then the new one twice; keys and sessions stay valid",
    newPassword: true,
    examples: [['$0 passwd --password-file pw', 'line 1 of pw: the current password, line 2: the new one']],
    run: async ({ session, passwords }) => {
      if (!passwords) throw new Error('passwd needs the new password');
      await session.changePassword(passwords.current, passwords.replacement);
      return text(`changed the password of ${session.username}`, { user: session.username, changed: true });
    },
  },
  {
    group: 'keys',
    command: 'list',
    aliases: ['ls'],
    describe: "list the user's keys",
    run: async ({ session }) => {
      const keys = await session.listKeys();
      return text(keyTable(keys), { keys: keys.map(keyJson) });
    },
  },
  {
    group: 'keys',
    command: 'generate',
    aliases: ['gen'],
    describe: 'generate a key in the server; prints its id',
    options: { ...KEY_SPEC_OPTIONS, length: { type: 'number', describe: 'secret keys: length in bytes (hmac: 16..64, default 32)' } },
    examples: [['$0 keys generate --type ed25519 --id release-signing', 'a signing key that never leaves the server']],
    run: async ({ session, args }) => {
      const length = args.length === undefined ? undefined : Number(args.length);
      if (length !== undefined && !(Number.isInteger(length) && length > 0)) throw usageError('--length is a positive number of bytes');
      return keyResult(await session.generateKey({ ...keySpec(args), ...(length !== undefined && { lengthBytes: length }) }));
    },
  },
  {
    group: 'keys',
    command: 'import',
    describe: 'import key material (PKCS#8 DER or PEM private key, or raw secret bytes); prints its id',
    options: { ...KEY_SPEC_OPTIONS, format: { choices: names(KEY_FORMATS), demandOption: true, describe: 'format of the input (pkcs8-der also takes PEM)' } },
    data: 'the key material',
    examples: [['openssl genpkey -algorithm ed25519 | $0 keys import --type ed25519 --format pkcs8-der --password-file pw', 'bring your own key']],
    run: async ({ session, args, data }) => {
      const format = args.format as KeyFormatName;
      const keyData = format === 'pkcs8-der' ? (pemToDer(data, 'PRIVATE KEY') ?? data) : data;
      try {
        if (keyData.length === 0) throw inputError('the key material is empty');
        return keyResult(await session.importKey({ ...keySpec(args), format, keyData }));
      } finally {
        keyData.fill(0);
        data.fill(0);
      }
    },
  },
  {
    group: 'keys',
    command: 'info <key>',
    describe: "show a key's type, usages and use counters",
    run: async ({ session, args }) => {
      const info = await session.keyInfo(keyArg(args));
      return text(keyText(info), keyJson(info));
    },
  },
  {
    group: 'keys',
    command: 'delete <key>',
    aliases: ['del', 'rm'],
    describe: 'delete a key for good',
    run: async ({ session, args }) => {
      await session.deleteKey(keyArg(args));
      return text(`deleted key ${keyArg(args)}`, { deleted: keyArg(args) });
    },
  },
  {
    group: 'keys',
    command: 'pubkey <key>',
    describe: 'the public key of a key pair',
    options: {
      format: { choices: [...Object.keys(PUBKEY_ALIASES), ...names(PUBLIC_KEY_FORMATS)], default: 'pem', describe: 'pem or der (SubjectPublicKeyInfo), or jwk' },
    },
    binaryOutput: true,
    examples: [['$0 keys pubkey release-signing --out pub.pem', 'for openssl pkeyutl -verify -pubin -inkey pub.pem']],
    run: async ({ session, args }) => {
      const keyId = keyArg(args);
      const format = PUBKEY_ALIASES[String(args.format)] ?? (String(args.format) as PublicKeyFormatName);
      if (format === 'spki-pem') {
        const pem = await session.publicKey(keyId, 'spki-pem');
        return text(pem.trimEnd(), { keyId, format, publicKey: pem });
      }
      if (format === 'jwk') {
        const jwk = await session.publicKey(keyId, 'jwk');
        return text(JSON.stringify(jwk), { keyId, format, publicKey: jwk });
      }
      return bytes('publicKey', await session.publicKey(keyId, 'spki-der'), { keyId, format });
    },
  },
  {
    group: 'keys',
    command: 'export <key>',
    describe: 'the key material of a key created --extractable (written 0600 with --out)',
    options: { format: { choices: [...names(KEY_FORMATS), EXPORT_PEM], demandOption: true, describe: 'pkcs8-der or pkcs8-pem for private keys, raw for secrets' } },
    binaryOutput: true,
    run: async ({ session, args }) => {
      const keyId = keyArg(args);
      const format = String(args.format);
      if (format === EXPORT_PEM) {
        const pem = derToPem(await session.exportKey(keyId, 'pkcs8-der'), 'PRIVATE KEY');
        return { kind: 'text', text: pem.trimEnd(), json: { keyId, format, keyData: pem }, secret: true };
      }
      return bytes('keyData', await session.exportKey(keyId, format as KeyFormatName), { keyId, format }, true);
    },
  },
  {
    group: 'keys',
    command: 'wrapping-key',
    describe: "the public key to wrap keys for import-wrapped (PEM): the user's RSA-4096 'vhsm-wrapping-key', made on first use",
    examples: [['$0 keys wrapping-key --out wrap.pem', 'give wrap.pem to whoever wraps a key for you (RSA-OAEP-SHA256 + AES-KWP)']],
    run: async ({ session }) => {
      const wrapping = await session.wrappingKey();
      return text(wrapping.publicKeyPem.trimEnd(), { keyId: wrapping.key.keyId, format: 'spki-pem', publicKey: wrapping.publicKeyPem, key: keyJson(wrapping.key) });
    },
  },
  {
    group: 'keys',
    command: 'import-wrapped',
    describe: 'import a key wrapped with RSA-OAEP-SHA256 + AES-KWP (the Vault / cloud KMS BYOK format); prints its id',
    options: {
      ...KEY_SPEC_OPTIONS,
      format: { choices: names(KEY_FORMATS), describe: 'format of the wrapped material (default: pkcs8-der for key pairs, raw for secrets)' },
      'wrapping-key': { type: 'string', describe: 'the RSA key (usage unwrap) it was wrapped for (default: vhsm-wrapping-key)' },
    },
    data: 'the wrapped key',
    examples: [['$0 keys import-wrapped --type aes-256 --id data-key --in wrapped.bin', 'RSA-OAEP(ephemeral AES key) ‖ AES-KWP(ephemeral, key material)']],
    run: async ({ session, args, data }) => {
      if (data.length === 0) throw inputError('the wrapped key is empty');
      const wrappingKeyId = args.wrappingKey as string | undefined;
      return keyResult(
        await session.importWrappedKey({
          ...keySpec(args),
          wrappedKey: data,
          ...(args.format !== undefined && { format: args.format as KeyFormatName }),
          ...(wrappingKeyId !== undefined && { wrappingKeyId }),
        }),
      );
    },
  },
  {
    group: 'keys',
    command: 'export-wrapped <key>',
    describe: 'an extractable key, wrapped with RSA-OAEP-SHA256 + AES-KWP for an RSA public key (--to) or a stored RSA key (--to-key)',
    options: {
      'to-key': { type: 'string', describe: 'wrap for this stored RSA key (usage wrap) instead of --to' },
      format: { choices: names(KEY_FORMATS), describe: 'format of the wrapped material (default: pkcs8-der for key pairs, raw for secrets)' },
    },
    files: { to: { what: 'the RSA public key to wrap for (PEM or SPKI DER, 2048..4096 bits)', asIs: true, required: false } },
    binaryOutput: true,
    examples: [['$0 keys export-wrapped data-key --to their-wrap.pem -e raw --out data-key.wrapped', 'for their import-wrapped']],
    run: async ({ session, args, files }) => {
      const toKey = args.toKey as string | undefined;
      if ((files.to === undefined) === (toKey === undefined)) throw usageError('give one of --to PUBKEY.pem and --to-key KEY');
      const target = toKey !== undefined ? { wrappingKeyId: toKey } : { publicKey: publicKeyFile(files.to!) };
      const format = args.format as KeyFormatName | undefined;
      const wrapped = await session.exportWrappedKey(keyArg(args), target, format === undefined ? {} : { format });
      return bytes('wrappedKey', wrapped, { keyId: keyArg(args), ...(format !== undefined && { format }) }, true);
    },
  },
  {
    command: 'sign <key>',
    describe: 'sign data with a private key',
    options: SIGN_OPTIONS,
    data: 'the data to sign',
    binaryOutput: true,
    examples: [['$0 sign release-signing --in release.tar --encoding raw --out release.sig', 'a raw (DER for ECDSA) signature file']],
    run: async ({ session, args, data }) => bytes('signature', await session.sign(keyArg(args), data, signOptions(args)), { keyId: keyArg(args) }),
  },
  {
    command: 'verify <key>',
    describe: 'check a signature (exit 0 valid, 1 invalid)',
    options: SIGN_OPTIONS,
    data: 'the signed data',
    files: { sig: 'the signature' },
    run: async ({ session, args, data, files }) => ({
      kind: 'verdict',
      valid: await session.verify(keyArg(args), data, files.sig!, signOptions(args)),
      json: { keyId: keyArg(args) },
    }),
  },
  {
    command: 'mac <key>',
    describe: 'compute a MAC with a secret key',
    options: MAC_OPTIONS,
    data: 'the data (any size)',
    stream: true,
    binaryOutput: true,
    run: async ({ session, args, input }) => {
      const keyId = keyArg(args);
      const options = macOptions(args);
      const mac = await overInput(
        input,
        (data) => session.mac(keyId, data, options),
        () => session.macInit(keyId, options),
        (stream, last) => stream.final(last),
      );
      return bytes('mac', mac, { keyId });
    },
  },
  {
    command: 'verify-mac <key>',
    describe: 'check a MAC in constant time (exit 0 valid, 1 invalid)',
    options: MAC_OPTIONS,
    data: 'the data (any size)',
    stream: true,
    files: { mac: 'the MAC' },
    run: async ({ session, args, input, files }) => {
      const keyId = keyArg(args);
      const options = macOptions(args);
      const valid = await overInput(
        input,
        (data) => session.verifyMac(keyId, data, files.mac!, options),
        () => session.macInit(keyId, options),
        (stream, last) => stream.verify(files.mac!, last),
      );
      return { kind: 'verdict', valid, json: { keyId } };
    },
  },
  {
    command: 'digest',
    describe: 'hash data in the server',
    options: { algorithm: { choices: names(DIGEST_ALGORITHMS), describe: 'digest algorithm (default sha256)' } },
    data: 'the data (any size)',
    stream: true,
    binaryOutput: true,
    examples: [['$0 digest --algorithm sha3-256 --in image.iso', 'large inputs are streamed to the server in 32 KiB chunks']],
    run: async ({ session, args, input }) => {
      const algorithm = args.algorithm as DigestAlgorithmName | undefined;
      const options = algorithm === undefined ? {} : { algorithm };
      const digest = await overInput(
        input,
        (data) => session.digest(data, options),
        () => session.digestInit(options),
        (stream, last) => stream.final(last),
      );
      return bytes('digest', digest, { algorithm: algorithm ?? 'sha256' });
    },
  },
  {
    command: 'encrypt <key>',
    describe: 'encrypt data (up to ~32 KiB): AEAD under a server-chosen nonce, or RSA-OAEP; prints nonce‖ciphertext‖tag',
    options: ENCRYPT_OPTIONS,
    data: 'the plaintext',
    files: AAD_FILE,
    binaryOutput: true,
    examples: [
      ['$0 encrypt data-key --in secret.txt --aad 7573657233 -e raw --out secret.enc', 'AES-GCM / ChaCha20-Poly1305: 12-byte nonce ‖ ciphertext ‖ 16-byte tag'],
      ['$0 encrypt data-key --in secret.txt --json', '{"nonce", "ciphertext", "tag"} in hex'],
    ],
    run: async ({ session, args, data, files }) => {
      const keyId = keyArg(args);
      const sealed = await session.encrypt(keyId, data, encryptOptions(args, files));
      const aead = sealed.nonce.length > 0;
      const jsonFields: Record<string, Uint8Array> = aead ? { nonce: sealed.nonce, ciphertext: sealed.ciphertext, tag: sealed.tag } : { ciphertext: sealed.ciphertext };
      return {
        kind: 'bytes',
        field: 'ciphertext',
        bytes: frameCiphertext(sealed),
        json: { keyId, ...(args.algorithm !== undefined && { algorithm: args.algorithm }) },
        jsonFields,
      };
    },
  },
  {
    command: 'decrypt <key>',
    describe: 'decrypt what `vhsm encrypt` made (exit 15 if it does not authenticate; written 0600 with --out)',
    options: {
      ...ENCRYPT_OPTIONS,
      'in-format': {
        choices: CIPHERTEXT_FORMATS,
        default: 'framed',
        describe: 'framed: nonce‖ciphertext‖tag (encrypt without --json); json: the object of encrypt --json',
      },
    },
    data: 'the ciphertext',
    files: AAD_FILE,
    binaryOutput: true,
    examples: [['$0 decrypt data-key --in secret.enc --aad 7573657233 -e raw --out secret.txt', 'the plaintext, as it was']],
    run: async ({ session, args, data, files }) => {
      const keyId = keyArg(args);
      const options = encryptOptions(args, files);
      let sealed: Ciphertext;
      let algorithm = options.algorithm;
      if (args.inFormat === 'json') {
        if (args.inEncoding !== undefined && args.inEncoding !== 'raw') throw usageError('--in-format json reads the JSON as it is: leave out --in-encoding');
        const parsed = sealedFromJson(data);
        sealed = parsed.sealed;
        algorithm ??= parsed.algorithm;
      } else {
        // The framing depends on the mechanism: ask the key's type unless --algorithm says.
        const aead = algorithm !== undefined ? algorithm !== 'rsa-oaep-sha256' : AEAD_KEY_TYPES.has((await session.keyInfo(keyId)).type);
        sealed = unframeCiphertext(data, aead);
      }
      const plaintext = await session.decrypt(keyId, sealed, { ...options, ...(algorithm !== undefined && { algorithm }) });
      return bytes('plaintext', plaintext, { keyId }, true);
    },
  },
  {
    command: 'agree <key>',
    describe: 'ECDH (P-256/384/521) or X25519 with a peer public key; the result is stored as a new key, its id printed',
    options: {
      ...DERIVED_KEY_OPTIONS,
      type: { choices: DERIVED_TYPES, default: 'secret', describe: 'type of the new key (other than secret: needs a KDF)' },
    },
    files: { peer: { what: "the peer's public key (PEM, SPKI DER, or the raw point / 32 bytes)", asIs: true } },
    binaryOutput: true,
    examples: [
      ['$0 agree my-x25519 --peer their.pem --extractable --json', 'the raw shared secret, as `openssl pkeyutl -derive` computes it'],
      ['$0 agree my-p256 --peer their.pem --type aes-256 --kdf hkdf-sha256 --info 76310a --id session-key', 'HKDF over the shared secret: an AES key'],
    ],
    run: async ({ session, args, files, encoding }) => {
      const spec = derivedSpec(args, false);
      if (spec.type !== 'secret' && spec.kdf === undefined) throw usageError(`the raw shared secret is stored as type secret: add --kdf hkdf-sha256 to derive a key of type ${spec.type}`);
      return derivedResult(await session.agreeKey(keyArg(args), publicKeyFile(files.peer!), spec), encoding);
    },
  },
  {
    command: 'derive <key>',
    describe: "HKDF-SHA256 over a stored 'secret' key (usage derive); the result is stored as a new key, its id printed",
    options: {
      ...DERIVED_KEY_OPTIONS,
      type: { choices: DERIVED_TYPES, demandOption: true, describe: 'type of the new key' },
    },
    binaryOutput: true,
    examples: [['$0 derive shared --type aes-256 --salt 00112233 --info 6170702d7631 --id app-key', 'an AES key for one purpose']],
    run: async ({ session, args, encoding }) => {
      const spec = derivedSpec(args, true);
      return derivedResult(await session.deriveKey(keyArg(args), { ...spec, kdf: spec.kdf ?? {} }), encoding);
    },
  },
  {
    command: 'random <count>',
    describe: 'random bytes from the server CSPRNG (1..4096)',
    positionals: { count: { type: 'number', describe: 'how many bytes, 1..4096' } },
    binaryOutput: true,
    run: async ({ session, args }) => {
      const count = Number(args.count);
      if (!Number.isInteger(count) || count < 1 || count > 4096) throw usageError('random gives a whole number of bytes, 1..4096');
      return bytes('random', await session.random(count), { length: count }, true);
    },
  },
];
