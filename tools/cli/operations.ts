/**
 * What the `vhsm` CLI can do, as a table. Each row is one subcommand: its
 * yargs command string, options, which inputs it reads, and what it does
 * with a logged-in session. tools/vhsm.ts does the rest for every row
 * (credentials, connect, login, inputs, output, --json, exit codes).
 *
 * Adding a mechanism that the client library gains is one row, e.g.
 *
 *   {
 *     command: 'random <count>',
 *     describe: 'random bytes from the server CSPRNG',
 *     positionals: { count: { type: 'number', describe: 'how many bytes' } },
 *     binaryOutput: true,
 *     run: async ({ session, args }) => bytes('random', await session.random(Number(args.count))),
 *   },
 *
 * Algorithm choices come from the protocol's name tables (proto/names.ts),
 * so new rows there show up in --help and are accepted without a change here.
 */
import type { Options, PositionalOptions } from 'yargs';
import type { KeyInfo, VhsmSession } from '../../client/index.js';
import {
  DIGEST_ALGORITHMS,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  PUBLIC_KEY_FORMATS,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  type DigestAlgorithmName,
  type KeyFormatName,
  type KeyTypeName,
  type KeyUsageName,
  type MacAlgorithmName,
  type PublicKeyFormatName,
  type SignatureAlgorithmName,
  type SignatureEncodingName,
} from '../../proto/names.js';
import { inputError, usageError } from './errors.js';
import { derToPem, pemToDer, type Encoding } from './io.js';

export interface OpContext {
  readonly session: VhsmSession;
  /** Parsed command line (yargs camelCase keys). */
  readonly args: Readonly<Record<string, unknown>>;
  /** The main input (--in FILE or stdin), decoded with --in-encoding; empty when the row reads none. */
  readonly data: Uint8Array;
  /** The row's file inputs (e.g. --sig), decoded with --encoding, by option name. */
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly encoding: Encoding;
}

export type OpResult =
  /** Binary output: written in --encoding; under --json as `field` (hex or base64). */
  | { readonly kind: 'bytes'; readonly field: string; readonly bytes: Uint8Array; readonly json?: Record<string, unknown>; readonly secret?: boolean }
  /** Text output, or `json` under --json. */
  | { readonly kind: 'text'; readonly text: string; readonly json: unknown; readonly secret?: boolean }
  /** verify-style: prints valid/invalid, exits 0 or 1. */
  | { readonly kind: 'verdict'; readonly valid: boolean; readonly json: Record<string, unknown> };

export interface OperationSpec {
  /** yargs command string; a `<key>` positional is the key id. */
  readonly command: string;
  readonly aliases?: readonly string[];
  /** Subcommand group ('keys' → `vhsm keys ...`); none for top-level commands. */
  readonly group?: 'keys';
  readonly describe: string;
  readonly positionals?: Readonly<Record<string, PositionalOptions>>;
  readonly options?: Readonly<Record<string, Options>>;
  /** Reads the main input from --in FILE or stdin; the text says what it is. */
  readonly data?: string;
  /** File inputs decoded with --encoding: option name → what it is. Required options. */
  readonly files?: Readonly<Record<string, string>>;
  /** Produces binary output (so --encoding applies to it). */
  readonly binaryOutput?: boolean;
  readonly examples?: readonly (readonly [string, string])[];
  run(context: OpContext): Promise<OpResult>;
}

const names = (table: Record<string, number>): string[] => Object.keys(table);

export const bytes = (field: string, value: Uint8Array, json: Record<string, unknown> = {}, secret = false): OpResult => ({
  kind: 'bytes',
  field,
  bytes: value,
  json,
  secret,
});

const text = (value: string, json: unknown): OpResult => ({ kind: 'text', text: value, json });

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

function keyTable(keys: readonly KeyInfo[]): string {
  if (keys.length === 0) return 'no keys';
  const header = ['KEY ID', 'TYPE', 'USAGES', 'EXTRACTABLE', 'CREATED', 'USES', 'LABEL'];
  const rows = keys.map((k) => [k.keyId, k.type, k.usages.join(',') || '-', k.extractable ? 'yes' : 'no', k.createdAt.toISOString(), String(k.useCount), k.label]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Options shared by generate and import. */
const KEY_SPEC_OPTIONS: Readonly<Record<string, Options>> = {
  type: { choices: names(KEY_TYPES), demandOption: true, describe: 'key type' },
  id: { type: 'string', describe: 'key id, [A-Za-z0-9][A-Za-z0-9._:-]{0,63} (default: the server picks 32 hex digits)' },
  label: { type: 'string', describe: 'free text, up to 128 bytes' },
  usage: { choices: names(KEY_USAGES), array: true, describe: "allowed usage, repeatable (default: the type's: sign+verify, or mac)" },
  extractable: { type: 'boolean', default: false, describe: 'allow `vhsm keys export` (default: the key never leaves the server)' },
};

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

function keySpec(args: Readonly<Record<string, unknown>>) {
  const keyId = args.id as string | undefined;
  if (keyId !== undefined && !KEY_ID.test(keyId)) throw usageError(`--id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}, got '${keyId}'`);
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
});

const SIGN_OPTIONS: Readonly<Record<string, Options>> = {
  algorithm: { choices: names(SIGNATURE_ALGORITHMS), describe: "signature algorithm (default: the key type's)" },
  format: { choices: names(SIGNATURE_ENCODINGS), describe: 'ECDSA signature format: der (ASN.1, as openssl) or raw (r||s, as JOSE); default der' },
};

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
    data: 'the data',
    binaryOutput: true,
    run: async ({ session, args, data }) => bytes('mac', await session.mac(keyArg(args), data, macOptions(args)), { keyId: keyArg(args) }),
  },
  {
    command: 'verify-mac <key>',
    describe: 'check a MAC in constant time (exit 0 valid, 1 invalid)',
    options: MAC_OPTIONS,
    data: 'the data',
    files: { mac: 'the MAC' },
    run: async ({ session, args, data, files }) => ({
      kind: 'verdict',
      valid: await session.verifyMac(keyArg(args), data, files.mac!, macOptions(args)),
      json: { keyId: keyArg(args) },
    }),
  },
  {
    command: 'digest',
    describe: 'hash data in the server',
    options: { algorithm: { choices: names(DIGEST_ALGORITHMS), describe: 'digest algorithm (default sha256)' } },
    data: 'the data',
    binaryOutput: true,
    run: async ({ session, args, data }) => {
      const algorithm = args.algorithm as DigestAlgorithmName | undefined;
      return bytes('digest', await session.digest(data, algorithm === undefined ? {} : { algorithm }), { algorithm: algorithm ?? 'sha256' });
    },
  },
];
