/**
 * vhsm-admin end to end: init, users, containers, locks, audit, passwords
 * from stdin or a file (never argv), --json output and exit codes.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VhsmClient } from '../../client/index.js';
import { VhsmServer } from '../../server/server.js';
import { SCHEMA_VERSION } from '../../server/storage.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { identity, tempDir } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';

const tool = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'vhsm-admin.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function admin(db: string, args: string[], input?: string): Run {
  const result = spawnSync(process.execPath, [tool, '--db', db, ...args], { input: input ?? '', encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const json = <T>(run: Run): T => JSON.parse(run.stdout) as T;

t.test('vhsm-admin', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const db = join(dir, 'vhsm.db');

  t.equal(admin(db, ['user', 'list']).status, 3, 'exit 3 before init (no DB)');
  const init = admin(db, ['init', '--json']);
  t.equal(init.status, 0, 'init');
  t.same(json(init), { db, created: true, schemaVersion: SCHEMA_VERSION });
  t.equal(statSync(db).mode & 0o777, 0o600, 'DB created 0600');
  t.same(json(admin(db, ['init', '--json'])), { db, created: false, schemaVersion: SCHEMA_VERSION }, 'init again is harmless');

  const add = admin(db, ['user', 'add', 'alice', '--ctid', '101', '--ctid', '102', '--iterations', '1000', '--password-stdin', '--json'], 'first password\n');
  t.equal(add.status, 0, 'user add from stdin');
  t.notMatch(add.stdout + add.stderr, /first password/, 'the password is not echoed');
  const passwordFile = join(dir, 'bob.pw');
  writeFileSync(passwordFile, 'bob password\n', { mode: 0o600 });
  t.equal(admin(db, ['user', 'add', 'bob', '--iterations', '1000', '--password-file', passwordFile]).status, 0, 'user add from a file');
  t.equal(admin(db, ['user', 'add', 'alice', '--iterations', '1000', '--password-stdin'], 'x\n').status, 5, 'exit 5: user exists');
  t.equal(admin(db, ['user', 'add', 'carol', '--iterations', '1000']).status, 8, 'exit 8: no TTY and no password source');
  t.equal(admin(db, ['user', 'add', 'carol', '--iterations', '1000', '--password-stdin'], '\n').status, 8, 'exit 8: empty password');
  const argvPassword = admin(db, ['user', 'add', 'carol', '--password', 'secret']);
  t.equal(argvPassword.status, 2, 'exit 2: there is no way to pass a password in argv');
  t.equal(admin(db, ['user', 'add', 'bad/name', '--password-stdin'], 'x\n').status, 2, 'exit 2: invalid user name');
  t.equal(admin(db, ['user', 'allow', 'bob', '103', '104']).status, 0, 'allow');
  t.equal(admin(db, ['user', 'deny', 'alice', '102']).status, 0, 'deny');
  t.equal(admin(db, ['user', 'allow', 'nobody', '1']).status, 4, 'exit 4: no such user');
  t.equal(admin(db, ['user', 'allow', 'bob', 'x']).status, 2, 'exit 2: bad CTID');

  // A server on this DB, with a strict lockout, to create keys and lock alice out of 101.
  const hub = new MemoryTransportHub();
  let server = await VhsmServer.open({ storagePath: db, pbkdf2Iterations: 1000, lockout: { freeAttempts: 1, backoffBaseMs: 1, backoffMaxMs: 1, lockAfter: 2 } });
  server.serve(hub.createServerTransport());
  t.teardown(() => server.stop());
  const client = await VhsmClient.connect(hub.connect(identity({ ctid: 101 })));
  const session = await client.login('alice', 'first password');
  await session.generateKey({ type: 'ed25519', keyId: 'kept' });
  await session.logout();
  for (let i = 0; i < 2; i++) {
    await client.login('alice', 'wrong').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await expectCode(t, client.login('alice', 'first password'), 'LOCKED_OUT', 'alice is locked out of 101');

  const users = json<{ name: string; allowedCtids: number[]; keyCount: number; locked: boolean; failures: { ctid: number; failures: number; locked: boolean }[] }[]>(
    admin(db, ['user', 'list', '--json']),
  );
  t.same(
    users.map((u) => [u.name, u.allowedCtids, u.keyCount, u.locked]),
    [
      ['alice', [101], 1, true],
      ['bob', [103, 104], 0, false],
    ],
    'list: containers, key counts, lock state',
  );
  t.match(admin(db, ['user', 'list']).stdout, /alice\s+101\s+1\s+LOCKED \(ctid 101\)/, 'the text table shows the lock');
  t.same(json(admin(db, ['user', 'unlock', 'alice', '--ctid', '101', '--json'])), { user: 'alice', ctid: 101, cleared: 1 }, 'unlock');
  t.ok((await client.login('alice', 'first password')).active, 'alice logs in again after unlock');

  t.equal(admin(db, ['user', 'passwd', 'alice', '--iterations', '1000', '--password-stdin'], 'wrong\nnew password\n').status, 6, 'exit 6: wrong current password');
  t.equal(admin(db, ['user', 'passwd', 'alice', '--iterations', '1000', '--password-stdin'], 'first password\n').status, 8, 'exit 8: passwd needs two lines');
  t.equal(admin(db, ['user', 'passwd', 'alice', '--iterations', '2000', '--password-stdin'], 'first password\nnew password\n').status, 0, 'passwd');
  await expectCode(t, client.login('alice', 'first password'), 'BAD_CREDENTIALS', 'old password refused');
  const renewed = await client.login('alice', 'new password');
  t.ok((await renewed.sign('kept', new Uint8Array(1))).length === 64, 'keys still usable with the new password');
  await client.close();

  t.equal(admin(db, ['user', 'del', 'bob']).status, 0, 'del');
  t.equal(admin(db, ['user', 'del', 'bob']).status, 4, 'exit 4: already gone');

  await server.stop();
  const verify = admin(db, ['audit', 'verify', '--json']);
  t.equal(verify.status, 0, 'audit verify');
  const report = json<{ ok: boolean; rows: number; headSeq: number; headHash: string }>(verify);
  t.ok(report.ok && report.rows > 10, `${report.rows} audit rows, chain ok`);
  t.equal(admin(db, ['audit', 'verify', '--anchor', `${report.headSeq}:${report.headHash}`]).status, 0, 'verify with an anchor');
  const shown = json<{ op: string; user: string }[]>(admin(db, ['audit', 'show', '--user', 'alice', '--limit', '1000', '--json']));
  t.ok(shown.some((row) => row.op === 'admin:user.add') && shown.some((row) => row.op === 'login'), 'admin actions and requests are both in the log');
  t.match(
    shown.find((row) => row.op === 'login'),
    { ctid: 101, netnsCookie: '101007', pid: 4242, procStart: '1000000007', uid: 0, gid: 0 },
    'a request row shows every stamp (u64s as decimal strings)',
  );
  t.notMatch(admin(db, ['audit', 'show', '--limit', '1000']).stdout, /first password|new password/, 'no passwords in the audit');

  const raw = new Database(db);
  raw.exec("DROP TRIGGER audit_no_update; UPDATE audit SET result = 'OK' WHERE result = 'LOCKED_OUT';");
  raw.close();
  const broken = admin(db, ['audit', 'verify']);
  t.equal(broken.status, 7, 'exit 7: tampered audit');
  t.match(broken.stdout, /BROKEN/);

  chmodSync(db, 0o644);
  const insecure = admin(db, ['user', 'list']);
  t.equal(insecure.status, 3, 'exit 3: world-readable DB refused');
  t.match(insecure.stderr, /chmod 600/);
  chmodSync(db, 0o600);
  t.match(admin(db, ['--help']).stdout, /Exit codes:/, 'help documents the exit codes');
  server = await VhsmServer.open({ storagePath: db, pbkdf2Iterations: 1000 }); // for the teardown's stop()
});
