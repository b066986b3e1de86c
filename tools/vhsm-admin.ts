#!/usr/bin/env node
/**
 * vhsm-admin: server-side administration, run in the VHSM container on the
 * server's DB file, or on the PostgreSQL database several servers share
 * (--db postgres://user@host/db, password from --db-password-file, PGPASSWORD
 * or ~/.pgpass; never in the URL). Safe while servers run: every change is one
 * transaction, and servers read users, containers and locks per request.
 *
 *   vhsm-admin init
 *   vhsm-admin user add alice --ctid 101 --ctid 102
 *   vhsm-admin user passwd alice
 *   vhsm-admin user list --json
 *   vhsm-admin user allow alice 103 | deny alice 101 | unlock alice [--ctid 101]
 *   vhsm-admin user del alice
 *   vhsm-admin audit verify [--anchor [CHAIN@]SEQ:HASH ...]
 *   vhsm-admin audit show [--tail] [--limit N] [--user U] [--ctid N] [--chain SERVER]
 *   vhsm-admin migrate --from vhsm.db --to postgres://vhsm_admin@db/vhsm   (or back)
 *
 * Passwords come from a TTY prompt (no echo), --password-file FILE, or
 * --password-stdin; never from argv. For `user passwd`, the file or stdin
 * holds the current password on line 1 and the new one on line 2.
 * Exit codes: see EXIT_CODES_HELP (printed by --help).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { openAdminStore, type AdminStore } from '../server/admin-store.js';
import type { AuditAnchor, AuditRecord } from '../server/audit.js';
import { migrateStore } from '../server/migrate.js';
import { isPostgresUrl } from '../server/pg/store.js';
import { DEFAULT_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS, MIN_PBKDF2_ITERATIONS } from '../server/kdf.js';
import { isValidCtid, isValidUsername } from '../server/rules.js';
import { StorageError } from '../server/storage.js';
import { UserError, type UserSummary } from '../server/users.js';
import { EXIT, EXIT_CODES_HELP, ToolError } from './common/exit-codes.js';
import { readPasswords, type PasswordSource } from './common/password.js';

const DEFAULT_DB = process.env.VHSM_DB ?? '/var/lib/vhsm/vhsm.db';

interface GlobalArgs {
  db: string;
  dbPasswordFile: string | undefined;
  json: boolean;
}

const usage = (message: string): ToolError => new ToolError(EXIT.USAGE, message);

function output(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n` : `${text}\n`);
}

function checkUsername(name: unknown): string {
  if (typeof name !== 'string' || !isValidUsername(name)) throw usage('user names match [A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}');
  return name;
}

function checkCtids(values: unknown): number[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return list.map((value) => {
    const ctid = Number(value);
    if (!isValidCtid(ctid)) throw usage(`container ids are integers 0..4294967295, got ${String(value)}`);
    return ctid;
  });
}

function checkIterations(value: unknown): number {
  const iterations = Number(value);
  if (!Number.isInteger(iterations) || iterations < MIN_PBKDF2_ITERATIONS || iterations > MAX_PBKDF2_ITERATIONS) {
    throw usage(`--iterations must be an integer in ${MIN_PBKDF2_ITERATIONS}..${MAX_PBKDF2_ITERATIONS}`);
  }
  return iterations;
}

async function withStore<T>(args: GlobalArgs, fn: (store: AdminStore) => T | Promise<T>): Promise<T> {
  const store = await openAdminStore(args.db, args.dbPasswordFile === undefined ? {} : { passwordFile: args.dbPasswordFile });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Records an admin action in the audit chain (user = the user acted on); PostgreSQL: on the chain "admin". */
function auditAdmin(store: AdminStore, op: string, user: string): Promise<void> {
  const record: AuditRecord = {
    timeMs: Date.now(),
    ctid: 0,
    netnsCookie: 0n,
    pid: process.pid,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    user,
    op: `admin:${op}`,
    keyId: '',
    result: 'OK',
  };
  return store.auditAdmin([record]);
}

function passwordSource(args: { passwordFile?: string | undefined; passwordStdin?: boolean | undefined }): PasswordSource {
  if (args.passwordFile !== undefined && args.passwordStdin) throw usage('give at most one of --password-file and --password-stdin');
  return { passwordFile: args.passwordFile, passwordStdin: args.passwordStdin };
}

function withPasswordOptions<T>(y: Argv<T>) {
  return y
    .option('password-file', { type: 'string', describe: 'read the password(s) from this file, one per line' })
    .option('password-stdin', { type: 'boolean', describe: 'read the password(s) from standard input, one per line' });
}

function formatTime(ms: number): string {
  return ms ? new Date(ms).toISOString() : '-';
}

function userTable(users: readonly UserSummary[]): string {
  if (users.length === 0) return 'no users';
  const rows = users.map((user) => [
    user.name,
    user.allowedCtids.join(',') || '-',
    String(user.keyCount),
    user.locked
      ? `LOCKED (ctid ${user.failures.filter((f) => f.locked).map((f) => f.ctid).join(',')})`
      : user.failures.length
        ? `failures: ${user.failures.map((f) => `${f.ctid}:${f.failures}`).join(' ')}`
        : 'ok',
    String(user.kdfIterations),
    formatTime(user.createdMs),
  ]);
  const header = ['USER', 'CONTAINERS', 'KEYS', 'LOGIN STATE', 'PBKDF2', 'CREATED'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** --anchor [CHAIN@]SEQ:HASH, repeatable (one per chain); no chain = the SQLite chain (""). */
function parseAnchors(value: unknown): Map<string, AuditAnchor> {
  const anchors = new Map<string, AuditAnchor>();
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  for (const item of list) {
    const match = /^(?:([^@]*)@)?(\d+):([0-9a-fA-F]{64})$/.exec(String(item));
    if (!match) throw usage('--anchor is [CHAIN@]SEQ:HASH (64 hex digits), as printed by audit verify');
    anchors.set(match[1] ?? '', { seq: Number(match[2]), hash: match[3]! });
  }
  return anchors;
}

/** `user allow` and `user deny`: the same command but for the change it makes and what it reports. */
function containersCommand(verb: 'allow' | 'deny'): CommandModule<object, { name: string; ctids: number[] }> {
  const spec =
    verb === 'allow'
      ? { describe: 'let containers log in as the user', apply: (s: AdminStore, n: string, c: number[]) => s.allowContainers(n, c), field: 'allowed', says: 'may log in from' }
      : {
          describe: 'stop containers from logging in as the user (their sessions end at their next request)',
          apply: (s: AdminStore, n: string, c: number[]) => s.denyContainers(n, c),
          field: 'denied',
          says: 'may no longer log in from',
        };
  return {
    command: `${verb} <name> <ctids..>`,
    describe: spec.describe,
    builder: (y) =>
      y.positional('name', { type: 'string', demandOption: true }).positional('ctids', { type: 'number', array: true, demandOption: true }),
    handler: async (args) => {
      const global = args as unknown as GlobalArgs;
      const { json } = global;
      const name = checkUsername(args.name);
      const ctids = checkCtids(args.ctids);
      await withStore(global, async (store) => {
        await spec.apply(store, name, ctids);
        await auditAdmin(store, `user.${verb}`, name);
      });
      output(json, { user: name, [spec.field]: ctids }, `${name} ${spec.says} ${ctids.join(', ')}`);
    },
  };
}

const cli = yargs(hideBin(process.argv))
  .scriptName('vhsm-admin')
  .usage('$0 <command>\n\nAdministers the VHSM server storage: users, allowed containers, audit.')
  .option('db', { type: 'string', default: DEFAULT_DB, describe: 'the server DB file, or a postgres:// URL without a password (or $VHSM_DB)' })
  .option('db-password-file', { type: 'string', describe: 'PostgreSQL: file holding the password (else PGPASSWORD or ~/.pgpass)' })
  .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
  .command(
    'init',
    'create the DB file (0600) or the PostgreSQL schema, or bring it up to date',
    (y) => y,
    async (args) => {
      const global = args as unknown as GlobalArgs;
      const { db, json } = global;
      let created = false;
      const passwordFile = global.dbPasswordFile === undefined ? {} : { passwordFile: global.dbPasswordFile };
      if (isPostgresUrl(db)) {
        try {
          await (await openAdminStore(db, passwordFile)).close(); // exists: brought up to date
        } catch (error) {
          if (!(error instanceof StorageError && error.code === 'NOT_FOUND')) throw error;
          await (await openAdminStore(db, { create: true, ...passwordFile })).close();
          created = true;
        }
      } else {
        mkdirSync(dirname(db), { recursive: true, mode: 0o700 });
        try {
          await (await openAdminStore(db, { create: true, exclusive: true })).close();
          created = true;
        } catch (error) {
          if (!(error instanceof StorageError && error.code === 'EXISTS')) throw error;
        }
      }
      const version = await withStore(global, (store) => store.schemaVersion);
      output(json, { db, created, schemaVersion: version }, created ? `created ${db} (schema ${version})` : `${db} is up to date (schema ${version})`);
    },
  )
  .command(
    'migrate',
    'copy the whole store between a SQLite file and a PostgreSQL database (either way), ciphertexts as they are; the destination must be new',
    (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'source: a DB file or a postgres:// URL' })
        .option('to', { type: 'string', demandOption: true, describe: 'destination: a new DB file or an empty postgres:// database' }),
    async (args) => {
      const global = args as unknown as GlobalArgs;
      const report = await migrateStore(String(args.from), String(args.to), global.dbPasswordFile === undefined ? {} : { passwordFile: global.dbPasswordFile });
      output(
        global.json,
        report,
        `copied ${report.users} users, ${report.keys} keys, ${report.certificates} certificates, ${report.auditRows} audit rows (chains: ${report.sourceChains.map((c) => JSON.stringify(c)).join(', ') || 'none'}); run \`vhsm-admin --db DEST audit verify\``,
      );
    },
  )
  .command('user', 'manage users', (y) =>
    y
      .command(
        'add <name>',
        'create a user (asks for the password)',
        (y) =>
          withPasswordOptions(y)
            .positional('name', { type: 'string', demandOption: true })
            .option('ctid', { type: 'number', array: true, describe: 'container allowed to log in (repeatable)' })
            .option('iterations', { type: 'number', default: DEFAULT_PBKDF2_ITERATIONS, describe: 'PBKDF2 iterations' }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const name = checkUsername(args.name);
          const ctids = checkCtids(args.ctid);
          const iterations = checkIterations(args.iterations);
          const source = passwordSource(args);
          await withStore(global, async (store) => {
            if (await store.userExists(name)) throw new UserError('EXISTS', `user ${name} already exists`);
            const [password] = await readPasswords(source, [{ label: `Password for ${name}`, confirm: true }]);
            try {
              await store.createUser({ name, password: password!, iterations, ctids, nowMs: Date.now() });
            } finally {
              password!.fill(0);
            }
            await auditAdmin(store, 'user.add', name);
          });
          output(json, { added: name, ctids, iterations }, `added user ${name}${ctids.length ? ` (containers ${ctids.join(', ')})` : ''}`);
        },
      )
      .command(
        'passwd <name>',
        "change a user's password (asks for the current and the new one); keys stay usable",
        (y) =>
          withPasswordOptions(y)
            .positional('name', { type: 'string', demandOption: true })
            .option('iterations', { type: 'number', default: DEFAULT_PBKDF2_ITERATIONS, describe: 'PBKDF2 iterations for the new password' }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const name = checkUsername(args.name);
          const iterations = checkIterations(args.iterations);
          const source = passwordSource(args);
          await withStore(global, async (store) => {
            const [oldPassword, newPassword] = await readPasswords(source, [
              { label: `Current password for ${name}` },
              { label: `New password for ${name}`, confirm: true },
            ]);
            try {
              await store.changePassword({ name, oldPassword: oldPassword!, newPassword: newPassword!, iterations, nowMs: Date.now() });
            } finally {
              oldPassword!.fill(0);
              newPassword!.fill(0);
            }
            await auditAdmin(store, 'user.passwd', name);
          });
          output(json, { changed: name, iterations }, `changed the password of ${name}`);
        },
      )
      .command(
        ['del <name>', 'delete <name>'],
        'delete a user and all their keys',
        (y) => y.positional('name', { type: 'string', demandOption: true }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const name = checkUsername(args.name);
          await withStore(global, async (store) => {
            await store.deleteUser(name);
            await auditAdmin(store, 'user.del', name);
          });
          output(json, { deleted: name }, `deleted user ${name} and their keys`);
        },
      )
      .command(
        ['list', 'ls'],
        'list users, their containers, key counts and login lock state',
        (y) => y,
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const users = await withStore(global, (store) => store.listUsers());
          output(json, users, userTable(users));
        },
      )
      .command(containersCommand('allow'))
      .command(containersCommand('deny'))
      .command(
        'unlock <name>',
        'clear failed-login backoff and locks (all containers, or one)',
        (y) => y.positional('name', { type: 'string', demandOption: true }).option('ctid', { type: 'number', describe: 'only this container' }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const name = checkUsername(args.name);
          const ctid = args.ctid === undefined ? undefined : checkCtids(args.ctid)[0];
          const cleared = await withStore(global, async (store) => {
            const count = await store.unlockUser(name, ctid);
            await auditAdmin(store, 'user.unlock', name);
            return count;
          });
          output(json, { user: name, ctid: ctid ?? null, cleared }, `cleared ${cleared} failure record(s) of ${name}`);
        },
      )
      .demandCommand(1, 'name a user command: add, passwd, del, list, allow, deny or unlock'),
  )
  .command('audit', 'check and read the audit log', (y) =>
    y
      .command(
        'verify',
        'check every hash chain (PostgreSQL: one per server): edited, deleted, reordered or truncated rows; names the first bad row',
        (y) => y.option('anchor', { type: 'string', array: true, describe: '[CHAIN@]SEQ:HASH recorded earlier (repeatable, one per chain); must still be in the chain' }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const anchors = parseAnchors(args.anchor);
          const full = await withStore(global, (store) => store.verifyAudit(anchors));
          const sqlite = full.chains.length === 1 && full.chains[0]!.chain === '' && !isPostgresUrl(global.db);
          // SQLite keeps its report's shape (one chain): scripts read headSeq/headHash.
          const report = sqlite ? { ok: full.ok, rows: full.rows, headSeq: full.chains[0]!.headSeq, headHash: full.chains[0]!.headHash, problems: full.problems.map(({ seq, problem }) => ({ seq, problem })) } : full;
          const heads = full.chains.map((c) => (sqlite ? `head ${c.headSeq}:${c.headHash}` : `${c.chain}@${c.headSeq}:${c.headHash}`));
          const where = (p: { chain: string; seq: number }) => (sqlite ? `seq ${p.seq}` : `chain ${JSON.stringify(p.chain)} seq ${p.seq}`);
          const text = full.ok
            ? `audit chain ok: ${full.rows} rows, ${heads.join(', ') || 'no chains'}`
            : [`audit chain BROKEN (${full.rows} rows):`, ...full.problems.map((p) => `  ${where(p)}: ${p.problem}`)].join('\n');
          output(json, report, text);
          if (!report.ok) process.exitCode = EXIT.AUDIT_BROKEN;
        },
      )
      .command(
        'show',
        'print audit rows',
        (y) =>
          y
            .option('after', { type: 'number', default: 0, describe: 'rows after this seq' })
            .option('chain', { type: 'string', describe: 'PostgreSQL: only this server\'s chain' })
            .option('limit', { type: 'number', default: 100 })
            .option('user', { type: 'string' })
            .option('ctid', { type: 'number' })
            .option('tail', { type: 'boolean', default: false, describe: 'newest rows first' }),
        async (args) => {
          const global = args as unknown as GlobalArgs;
          const { json } = global;
          const limit = Number(args.limit);
          if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw usage('--limit is 1..100000');
          const rows = await withStore(global, (store) =>
            store.auditRows({
              afterSeq: args.after,
              limit,
              ...(args.chain === undefined ? {} : { chain: args.chain }),
              ...(args.user === undefined ? {} : { user: args.user }),
              ...(args.ctid === undefined ? {} : { ctid: checkCtids(args.ctid)[0]! }),
              newestFirst: args.tail,
            }),
          );
          const text = rows
            .map((r) => `${r.chain ? `${r.chain}@` : ''}${r.seq}\t${formatTime(r.timeMs)}\tctid=${r.ctid} pid=${r.pid} uid=${r.uid}\t${r.user || '-'}\t${r.op}\t${r.keyId || '-'}\t${r.result}`)
            .join('\n');
          output(json, rows, text || 'no rows');
        },
      )
      .demandCommand(1, 'name an audit command: verify or show'),
  )
  .demandCommand(1, 'name a command: init, migrate, user or audit')
  .strict()
  .epilogue(EXIT_CODES_HELP)
  .fail((message, error) => {
    throw error ?? usage(message);
  })
  .help();

function exitCodeFor(error: unknown): number {
  if (error instanceof ToolError) return error.exitCode;
  if (error instanceof StorageError) return error.code === 'EXISTS' ? EXIT.EXISTS : EXIT.STORAGE;
  if (error instanceof UserError) return error.code === 'NOT_FOUND' ? EXIT.NOT_FOUND : error.code === 'EXISTS' ? EXIT.EXISTS : EXIT.BAD_PASSWORD;
  return EXIT.FAILURE;
}

try {
  await cli.parseAsync();
} catch (error) {
  const code = exitCodeFor(error);
  process.stderr.write(`vhsm-admin: ${error instanceof Error ? error.message : String(error)}\n`);
  if (code === EXIT.USAGE) process.stderr.write("Try 'vhsm-admin --help'.\n");
  process.exitCode = code;
}
