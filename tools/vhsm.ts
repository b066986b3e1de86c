#!/usr/bin/env node
/**
 * vhsm: the client CLI, run in a client container. Each invocation connects
 * through vhsm_transport.ko, logs in, does one thing, logs out and closes.
 *
 *   vhsm login -u alice
 *   vhsm passwd                                   (current password, then the new one twice)
 *   vhsm keys generate --type ed25519 --id signing
 *   vhsm keys list | info KEY | pubkey KEY [--format pem|der|jwk] | export KEY | delete KEY
 *   vhsm keys import --type ec-p256 --format pkcs8-der --in key.pem
 *   vhsm sign KEY --in data [--encoding raw --out sig]
 *   vhsm verify KEY --in data --sig sig          (exit 0 valid, 1 invalid)
 *   vhsm mac KEY | verify-mac KEY --mac FILE | digest    (any size: streamed)
 *   vhsm encrypt KEY [--aad HEX | --aad-file F] | decrypt KEY   (nonce‖ciphertext‖tag)
 *   vhsm agree KEY --peer PUB.pem | derive KEY --type T [--salt HEX --info HEX]
 *   vhsm random N
 *   vhsm keys wrapping-key | import-wrapped --in FILE | export-wrapped KEY --to PUB.pem
 *   vhsm certs add --key KEY --in cert.pem | list | delete CERT
 *   vhsm public-objects -u alice                  (no password: what PKCS#11 shows before login)
 *
 * The user comes from --user or $VHSM_USER; the password from a prompt on
 * the terminal (no echo), --password-file FILE or --password-stdin; never
 * from argv or the environment. The subcommands are rows of a table in
 * tools/cli/operations.ts. Exit codes: tools/cli/exit-codes.ts (in --help).
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { VhsmClient, VhsmSession } from '../client/index.js';
// Light: stream.ts needs no protobufjs (the full client library is loaded on connect).
import { STREAM_CHUNK_BYTES } from '../client/stream.js';
import { readPasswords, type PasswordSource } from './common/password.js';
import { CliError, inputError, toCliError, usageError, type FailureContext } from './cli/errors.js';
import { VHSM_EXIT, VHSM_EXIT_CODES_HELP } from './cli/exit-codes.js';
import {
  ENCODINGS,
  MAX_DATA_BYTES,
  MAX_ENCODED_STREAM_BYTES,
  completeInput,
  decodeBytes,
  encodeBytes,
  jsonBytes,
  openInputChunks,
  readInput,
  writeOutput,
  type DataInput,
  type Encoding,
} from './cli/io.js';
import { OBJECT_OPERATIONS } from './cli/object-operations.js';
import { COMMAND_GROUPS, OPERATIONS, fileInput, type OpContext, type OpResult, type OperationSpec } from './cli/operations.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const USERNAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
const NO_ARGV_PASSWORD = /^-{1,2}(password|passwd|pass|pw)(=.*)?$/i;

const HELP_NOTES = `Credentials: the user is --user or $VHSM_USER. The password is asked on the
terminal (no echo; on /dev/tty when stdin carries data), or read from the first
line of --password-file FILE or of stdin (--password-stdin). It is never taken
from the command line or the environment. \`passwd\` asks for the current
password, then the new one twice (from a file or stdin: lines 1 and 2).
\`certs list\` and \`public-objects\` need no password.

Data: commands that take data read --in FILE, or stdin when --in is absent or
'-' (raw bytes; --in-encoding hex|base64 to decode). One request carries at
most 32 KiB; digest, mac and verify-mac take any size (streamed). Binary
results are written as hex with a newline unless --encoding base64|raw;
--sig/--mac files are read in the same --encoding, so sign and verify
round-trip. Key files (--peer, --to) and --aad-file are read as they are.
encrypt writes nonce‖ciphertext‖tag (RSA-OAEP: the ciphertext), or with
--json {nonce, ciphertext, tag}; decrypt reads either (--in-format).
--out FILE writes the result (or the --json object) there instead of stdout.

--json prints one JSON object: the result, or {"error":{"code","message","exitCode"}}.`;

interface GlobalArgs {
  user?: string;
  passwordFile?: string;
  passwordStdin?: boolean;
  json: boolean;
  timeoutMs: number;
  encoding?: Encoding;
  in?: string;
  inEncoding?: Encoding;
  out?: string;
  key?: string;
  id?: string;
}

/** --json was asked for (also when the command line failed to parse). */
const wantsJson = (): boolean => process.argv.slice(2).includes('--json');

function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function passwordSource(args: GlobalArgs): PasswordSource {
  if (args.passwordFile !== undefined && args.passwordStdin) throw usageError('give at most one of --password-file and --password-stdin');
  return { passwordFile: args.passwordFile, passwordStdin: args.passwordStdin, promptOnDevTty: true };
}

function resolveUser(args: GlobalArgs): string {
  const user = args.user ?? process.env.VHSM_USER;
  if (user === undefined || user === '') throw usageError('no user: give --user NAME or set VHSM_USER');
  if (!USERNAME.test(user)) throw usageError('user names match [A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}');
  return user;
}

function checkTimeout(value: unknown): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 100 || ms > 3_600_000) throw usageError('--timeout-ms is 100..3600000');
  return ms;
}

/** Reads the row's inputs before connecting, so bad files fail fast and without a password prompt. */
async function readInputs(
  spec: OperationSpec,
  args: GlobalArgs,
  source: PasswordSource,
): Promise<{ input: DataInput; files: Record<string, Uint8Array>; stdinUsed: boolean }> {
  const argv = args as unknown as Record<string, unknown>;
  const stdinTakers: string[] = [];
  if (source.passwordStdin) stdinTakers.push('--password-stdin');
  const dataPath = spec.data ? (args.in ?? '-') : undefined;
  if (dataPath === '-') stdinTakers.push(args.in === undefined ? 'the data (no --in given)' : '--in -');
  for (const name of Object.keys(spec.files ?? {})) {
    if (argv[name] === '-') stdinTakers.push(`--${name} -`);
  }
  if (stdinTakers.length > 1) {
    throw usageError(`only one input can come from standard input (here: ${stdinTakers.join(' and ')}): give the others as files (--in FILE)`);
  }

  const inEncoding = args.inEncoding ?? 'raw';
  let input: DataInput = completeInput(new Uint8Array(0));
  if (dataPath !== undefined && spec.stream && inEncoding === 'raw') {
    input = await openInputChunks(dataPath, 'data', STREAM_CHUNK_BYTES);
  } else if (dataPath !== undefined) {
    const data = decodeBytes(await readInput(dataPath, 'data', spec.stream ? MAX_ENCODED_STREAM_BYTES : undefined), inEncoding, 'data');
    if (!spec.stream && data.length > MAX_DATA_BYTES) throw inputError(`the data is ${data.length} bytes: one request carries at most ${MAX_DATA_BYTES} bytes`);
    input = completeInput(data);
  }
  const files: Record<string, Uint8Array> = {};
  for (const [name, file] of Object.entries(spec.files ?? {})) {
    const { what, asIs } = fileInput(file);
    if (argv[name] === undefined) continue;
    const bytes = await readInput(String(argv[name]), what);
    files[name] = asIs ? bytes : decodeBytes(bytes, args.encoding ?? 'hex', what);
  }
  return { input, files, stdinUsed: stdinTakers.length > 0 && !source.passwordStdin };
}

/** Connect, run, close. */
async function withClient<T>(args: GlobalArgs, fn: (client: VhsmClient) => Promise<T>): Promise<T> {
  // Loaded here, not at the top: protobufjs and the addon cost seconds under emulation, and --help needs neither.
  const [{ VhsmClient }, { openNetlinkClient }] = await Promise.all([import('../client/index.js'), import('../transport/netlink-client.js')]);
  const transport = await openNetlinkClient({ timeoutMs: args.timeoutMs });
  const client = await VhsmClient.connect(transport, { timeoutMs: args.timeoutMs });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

type Passwords = OpContext['passwords'];

/**
 * Connect, log in, run the row, log out, close. With `newPassword` the new
 * password is read too (after the current one), and both stay until the row
 * is done; otherwise the password is zeroed once the login is through.
 */
async function withSession<T>(
  args: GlobalArgs,
  user: string,
  source: PasswordSource,
  newPassword: boolean,
  fn: (session: VhsmSession, passwords: Passwords) => Promise<T>,
): Promise<T> {
  return withClient(args, async (client) => {
    const prompts = [{ label: `Password for ${user}` }, ...(newPassword ? [{ label: `New password for ${user}`, confirm: true }] : [])];
    const [current, replacement] = await readPasswords(source, prompts);
    try {
      let session: VhsmSession;
      try {
        session = await client.login(user, current!);
      } finally {
        if (!replacement) current!.fill(0);
      }
      try {
        return await fn(session, replacement ? { current: current!, replacement } : undefined);
      } finally {
        await session.logout({ timeoutMs: 2_000 }).catch(() => undefined);
      }
    } finally {
      current!.fill(0);
      replacement?.fill(0);
    }
  });
}

function emit(result: OpResult, args: GlobalArgs): number {
  const encoding = args.encoding ?? 'hex';
  const secret = result.kind !== 'verdict' && result.secret === true;
  if (result.kind === 'verdict') {
    const output = args.json ? jsonText({ ...result.json, valid: result.valid }) : `${result.valid ? 'valid' : 'INVALID'}\n`;
    writeOutput(args.out, Buffer.from(output));
    return result.valid ? VHSM_EXIT.OK : VHSM_EXIT.FAILURE;
  }
  if (args.json) {
    const fields = result.kind === 'bytes' ? (result.jsonFields ?? { [result.field]: result.bytes }) : {};
    const encoded = Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, jsonBytes(value, encoding)]));
    const value = result.kind === 'bytes' ? { ...result.json, ...encoded, encoding: encoding === 'base64' ? 'base64' : 'hex' } : result.json;
    writeOutput(args.out, Buffer.from(jsonText(value)), secret);
  } else {
    writeOutput(args.out, result.kind === 'bytes' ? encodeBytes(result.bytes, encoding) : Buffer.from(`${result.text}\n`), secret);
  }
  return VHSM_EXIT.OK;
}

async function execute(spec: OperationSpec, args: GlobalArgs): Promise<void> {
  const context: FailureContext = { user: args.user ?? process.env.VHSM_USER, keyId: args.key ?? args.id, timeoutMs: args.timeoutMs };
  try {
    checkTimeout(args.timeoutMs);
    const user = resolveUser(args);
    const source = passwordSource(args);
    if (spec.binaryOutput && args.json && args.encoding === 'raw') throw usageError('--encoding raw cannot go into --json: use hex or base64');
    if (spec.login === false && (source.passwordFile !== undefined || source.passwordStdin)) {
      throw usageError(`${spec.command.split(' ')[0]} needs no password: leave out --password-file and --password-stdin`);
    }
    const { input, files, stdinUsed } = await readInputs(spec, args, source);
    const inputs = {
      args: args as unknown as Record<string, unknown>,
      data: input.complete ? input.head : new Uint8Array(0),
      input,
      files,
      encoding: args.encoding ?? 'hex',
    };
    const result =
      spec.login === false
        ? await withClient(args, (client) => spec.run({ ...inputs, client, user }))
        : await withSession(args, user, { ...source, stdinInUse: stdinUsed }, spec.newPassword === true, (session, passwords) =>
            spec.run({ ...inputs, session, ...(passwords && { passwords }) }),
          );
    process.exitCode = emit(result, args);
  } catch (error) {
    throw toCliError(error, context);
  }
}

function register(y: Argv, spec: OperationSpec): Argv {
  return y.command(
    [spec.command, ...(spec.aliases ?? [])],
    spec.describe,
    (c) => {
      let builder = c as Argv;
      if (spec.command.includes('<key>')) builder = builder.positional('key', { type: 'string', describe: 'key id' });
      for (const [name, options] of Object.entries(spec.positionals ?? {})) builder = builder.positional(name, options);
      for (const [name, options] of Object.entries(spec.options ?? {})) builder = builder.option(name, options);
      if (spec.data) {
        builder = builder
          .option('in', { alias: 'i', type: 'string', describe: `${spec.data}: a file, or - for stdin (default stdin)` })
          .option('in-encoding', { choices: ENCODINGS, default: 'raw', describe: 'how the data is encoded' });
      }
      for (const [name, file] of Object.entries(spec.files ?? {})) {
        const { what, asIs, required } = fileInput(file);
        builder = builder.option(name, { type: 'string', demandOption: required, describe: `${what}: a file (or -)${asIs ? '' : ', in --encoding'}` });
      }
      if (spec.binaryOutput || Object.values(spec.files ?? {}).some((file) => !fileInput(file).asIs)) {
        builder = builder.option('encoding', { alias: 'e', choices: ENCODINGS, default: 'hex', describe: 'binary output and --sig/--mac files: hex, base64 or raw' });
      }
      for (const [command, description] of spec.examples ?? []) builder = builder.example(command, description);
      return builder;
    },
    (args) => execute(spec, args as unknown as GlobalArgs),
  );
}

function buildCli(argv: string[]): Argv {
  let cli: Argv = yargs(argv)
    .scriptName('vhsm')
    .usage('$0 <command> [options]\n\nUses keys held by the VHSM server, from a client container.')
    .option('user', { alias: 'u', type: 'string', describe: 'VHSM user (default $VHSM_USER)' })
    .option('password-file', { type: 'string', describe: 'read the password from the first line of this file' })
    .option('password-stdin', { type: 'boolean', describe: 'read the password from the first line of stdin' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
    .option('out', { alias: 'o', type: 'string', describe: 'write the result to this file instead of stdout' })
    .option('timeout-ms', { type: 'number', default: DEFAULT_TIMEOUT_MS, describe: 'per-request deadline' });
  const rows = [...OPERATIONS, ...OBJECT_OPERATIONS];
  for (const spec of rows.filter((s) => s.group === undefined)) cli = register(cli, spec);
  for (const [group, describe] of Object.entries(COMMAND_GROUPS)) {
    const groupRows = rows.filter((s) => s.group === group);
    const commands = groupRows.map((s) => s.command.split(' ')[0]).join(', ');
    cli = cli.command(group, `${describe}: ${commands}`, (y) => {
      let sub = y as Argv;
      for (const spec of groupRows) sub = register(sub, spec);
      return sub.demandCommand(1, `name a ${group} command: ${commands}`);
    });
  }
  return cli
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .epilogue(`${HELP_NOTES}\n\n${VHSM_EXIT_CODES_HELP}`)
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((message, error) => {
      throw error ?? usageError(message);
    })
    .help()
    .version(false);
}

function report(error: CliError): void {
  process.stderr.write(`vhsm: ${error.message}\n`);
  if (error.exitCode === VHSM_EXIT.USAGE && error.code === 'USAGE') process.stderr.write("Try 'vhsm --help'.\n");
  if (wantsJson()) {
    const detail = { code: error.code, message: error.message, exitCode: error.exitCode, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }) };
    process.stdout.write(jsonText({ error: detail }));
  }
  process.exitCode = error.exitCode;
}

// `vhsm keys list | head -1`: a reader that went away is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const argv = hideBin(process.argv);
try {
  // Refuse a password on the command line before yargs can echo it in an "unknown argument" message.
  if (argv.some((arg) => NO_ARGV_PASSWORD.test(arg))) {
    throw usageError('passwords are never taken from the command line: use the prompt, --password-file FILE or --password-stdin');
  }
  await buildCli(argv).parseAsync();
} catch (error) {
  report(toCliError(error));
}
