/**
 * change_password: the session's user replaces its own password. Only the
 * auth key is rewrapped (keys and other sessions stay valid), the old
 * password is checked exactly like a login (a wrong one is a login failure:
 * backoff, lockout, shared with login), the new one follows the admin
 * tool's rules, the request is audited and its bytes zeroed.
 */
import t from 'tap';
import { isPostgresUrl } from '../../server/pg/store.js';
import { VhsmClient, VhsmError, type VhsmSession } from '../../client/index.js';
import type { StampedRequest } from '../../transport/types.js';
import { ALICE, BOB, TEST_ITERATIONS, serveWrapped, startFixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';
import { auditRows, call, rawLogin, selectAll, snapshot } from './helpers/raw.js';

const NEW_PASSWORD = 'a brand new passphrase';
const POLICY = { freeAttempts: 2, backoffBaseMs: 100, backoffMaxMs: 400, lockAfter: 5 };

interface UserState {
  kdf_salt: Buffer;
  kdf_iterations: number;
  wrapped_auth_key: Buffer;
  password_changed_ms: number;
}

async function userState(dbPath: string, name: string): Promise<UserState> {
  const param = isPostgresUrl(dbPath) ? '$1' : '?';
  const [row] = await selectAll(dbPath, `SELECT kdf_salt, kdf_iterations, wrapped_auth_key, password_changed_ms FROM users WHERE name = ${param}`, [name]);
  return row as unknown as UserState;
}

/** The parts of the DB snapshot a password change must not touch. */
const keysPart = (snap: string): unknown => {
  const parsed = JSON.parse(snap) as Record<string, unknown>;
  return { keys: parsed.keys, certificates: parsed.certificates, user_containers: parsed.user_containers };
};

async function outcome(promise: Promise<unknown>): Promise<{ code: string; retryAfterMs?: number }> {
  try {
    await promise;
    return { code: 'OK' };
  } catch (error) {
    if (!(error instanceof VhsmError)) throw error;
    return error.retryAfterMs === undefined ? { code: error.code } : { code: error.code, retryAfterMs: error.retryAfterMs };
  }
}

async function loginOutcome(client: VhsmClient, password: string): Promise<{ code: string; retryAfterMs?: number }> {
  return outcome(client.login(ALICE.name, password).then((session) => session.logout()));
}

t.test('the new password logs in, the old one no longer; keys and every session stay valid', async (t) => {
  const fixture = await startFixture({ users: [{ ...ALICE, ctids: [101, 103] }, BOB] });
  t.teardown(() => fixture.close());
  const here = await (await fixture.client({ pid: 1 })).login(ALICE.name, ALICE.password);
  const elsewhere = await (await fixture.client({ ctid: 103, pid: 2 })).login(ALICE.name, ALICE.password);
  const key = await here.generateKey({ type: 'ec-p256', keyId: 'k' });
  const secret = await here.generateKey({ type: 'aes-256', keyId: 'aes' });
  const sealed = await here.encrypt(secret.keyId, Buffer.from('sealed before'));
  const before = (await userState(fixture.dbPath, ALICE.name));
  const keysBefore = keysPart((await snapshot(fixture.dbPath)));

  await here.changePassword(ALICE.password, NEW_PASSWORD);

  const after = (await userState(fixture.dbPath, ALICE.name));
  t.notSame(after.wrapped_auth_key, before.wrapped_auth_key, 'the auth key is rewrapped');
  t.notSame(after.kdf_salt, before.kdf_salt, 'under a fresh salt');
  t.ok(after.password_changed_ms >= before.password_changed_ms, 'the change time recorded');
  t.same(keysPart((await snapshot(fixture.dbPath))), keysBefore, 'keys, certificates and containers untouched');

  const message = Buffer.from('still works');
  const signature = await here.sign(key.keyId, message);
  t.equal(await elsewhere.verify(key.keyId, message, signature), true, 'the other session (another container) goes on');
  t.same(Buffer.from(await elsewhere.decrypt(secret.keyId, sealed)), Buffer.from('sealed before'), 'and decrypts what was sealed before');

  const client = await fixture.client({ pid: 3 });
  await expectCode(t, client.login(ALICE.name, ALICE.password), 'BAD_CREDENTIALS', 'the old password');
  const fresh = await client.login(ALICE.name, NEW_PASSWORD);
  t.equal(await fresh.verify(key.keyId, message, signature), true, 'the new password opens the same keys');

  const rows = (await auditRows(fixture.dbPath)).filter((row) => row.op === 'changePassword');
  t.same(rows.map((row) => [row.user, row.ctid, row.result]), [['alice', 101, 'OK']], 'audited once, OK');
  const bob = await (await fixture.client({ ctid: 102 })).login(BOB.name, BOB.password);
  t.ok(bob.active, "bob's password is untouched");
});

t.test('the PBKDF2 count never goes down: the larger of the user’s and the server’s', async (t) => {
  for (const [userIterations, serverIterations, expected] of [
    [2_000, TEST_ITERATIONS, 2_000],
    [TEST_ITERATIONS, 3_000, 3_000],
  ] as const) {
    const fixture = await startFixture({ userIterations, pbkdf2Iterations: serverIterations });
    const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
    await session.changePassword(ALICE.password, NEW_PASSWORD);
    t.equal((await userState(fixture.dbPath, ALICE.name)).kdf_iterations, expected, `user ${userIterations}, server ${serverIterations} → ${expected}`);
    await fixture.close();
  }
});

t.test('a wrong old password is a failed login: backoff, then lockout, shared with login', async (t) => {
  let now = Date.now();
  const fixture = await startFixture({ lockout: POLICY, clock: () => now });
  t.teardown(() => fixture.close());
  const session = await (await fixture.client({ pid: 1 })).login(ALICE.name, ALICE.password);
  const loginClient = await fixture.client({ pid: 2 });
  const before = (await userState(fixture.dbPath, ALICE.name));
  const change = (old: string): Promise<{ code: string; retryAfterMs?: number }> => outcome(session.changePassword(old, NEW_PASSWORD));

  t.same(await change('guess-1'), { code: 'BAD_CREDENTIALS' }, 'failure 1');
  t.same(await change('guess-2'), { code: 'BAD_CREDENTIALS' }, 'failure 2 (free attempts used up)');
  t.same(await change(ALICE.password), { code: 'LOGIN_THROTTLED', retryAfterMs: 100 }, 'throttled: even the right password is not checked');
  t.same(await loginOutcome(loginClient, ALICE.password), { code: 'LOGIN_THROTTLED', retryAfterMs: 100 }, 'and a login from this container is throttled too');
  now += 100;
  t.same(await loginOutcome(loginClient, 'guess-3'), { code: 'BAD_CREDENTIALS' }, 'failure 3, by login');
  t.same(await change('guess-4'), { code: 'LOGIN_THROTTLED', retryAfterMs: 200 }, 'the delay doubled, whichever op failed');
  now += 200;
  t.same(await change('guess-4'), { code: 'BAD_CREDENTIALS' }, 'failure 4');
  now += 400;
  t.same(await change('guess-5'), { code: 'BAD_CREDENTIALS' }, 'failure 5');
  t.same(await change(ALICE.password), { code: 'LOCKED_OUT' }, 'locked');
  t.ok((await session.digest(Buffer.from('x'))).length === 32, 'the open session itself keeps working (the lock is on authentication)');
  now += 24 * 3600_000;
  t.same(await loginOutcome(loginClient, ALICE.password), { code: 'LOCKED_OUT' }, 'login locked too, a day later');
  t.same(await loginOutcome(await fixture.client({ ctid: 101, pid: 3 }), ALICE.password), { code: 'LOCKED_OUT' }, 'for every process of the container');
  t.same((await userState(fixture.dbPath, ALICE.name)).wrapped_auth_key, before.wrapped_auth_key, 'the password never changed');
  const results = (await auditRows(fixture.dbPath))
    .filter((row) => row.op === 'changePassword')
    .map((row) => row.result);
  t.same(results, ['BAD_CREDENTIALS', 'BAD_CREDENTIALS', 'LOGIN_THROTTLED', 'LOGIN_THROTTLED', 'BAD_CREDENTIALS', 'BAD_CREDENTIALS', 'LOCKED_OUT'], 'every attempt audited with its result');
});

t.test('a successful change clears the container’s failures, as a login does', async (t) => {
  const fixture = await startFixture({ lockout: POLICY });
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  await expectCode(t, session.changePassword('wrong', NEW_PASSWORD), 'BAD_CREDENTIALS', 'one failure');
  t.match((await snapshot(fixture.dbPath)), /"login_failures":\[\{/, 'recorded');
  await session.changePassword(ALICE.password, NEW_PASSWORD);
  t.match((await snapshot(fixture.dbPath)), /"login_failures":\[\]/, 'cleared by the successful change');
});

t.test('the new password follows the admin tool’s rules; refusals change nothing and count nothing', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const transport = await fixture.connect();
  const session = await rawLogin(transport, ALICE.name, ALICE.password);
  const before = (await snapshot(fixture.dbPath));
  const old = Buffer.from(ALICE.password);
  for (const [what, body, code] of [
    ['an empty new password', { oldPassword: old, newPassword: new Uint8Array(0) }, 'INVALID_ARGUMENT'],
    ['a 1025-byte new password', { oldPassword: old, newPassword: Buffer.alloc(1025, 0x61) }, 'INVALID_ARGUMENT'],
    ['an empty old password', { oldPassword: new Uint8Array(0), newPassword: Buffer.from(NEW_PASSWORD) }, 'INVALID_ARGUMENT'],
    ['a 1025-byte old password', { oldPassword: Buffer.alloc(1025, 0x61), newPassword: Buffer.from(NEW_PASSWORD) }, 'INVALID_ARGUMENT'],
  ] as const) {
    t.equal((await call(transport, { session, changePassword: body })).error, code, `${what} → ${code}`);
  }
  t.equal((await call(transport, { changePassword: { oldPassword: old, newPassword: Buffer.from(NEW_PASSWORD) } })).error, 'NOT_AUTHENTICATED', 'no session');
  t.equal((await call(await fixture.connect({ pid: 99 }), { session, changePassword: { oldPassword: old, newPassword: Buffer.from('x') } })).error, 'SESSION_INVALID', "another process's session");
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed, no failure counted');
  const longest = Buffer.alloc(1024, 0x7a);
  t.equal((await call(transport, { session, changePassword: { oldPassword: old, newPassword: longest } })).error, undefined, 'a 1024-byte password is fine');
  const client = await fixture.client({ pid: 5 });
  t.ok((await client.login(ALICE.name, longest)).active, 'and logs in');
});

t.test('two concurrent changes: exactly one wins', async (t) => {
  const fixture = await startFixture({ users: [{ ...ALICE, ctids: [101, 103] }] });
  t.teardown(() => fixture.close());
  const sessions: VhsmSession[] = [
    await (await fixture.client({ ctid: 101, pid: 1 })).login(ALICE.name, ALICE.password),
    await (await fixture.client({ ctid: 103, pid: 1 })).login(ALICE.name, ALICE.password),
  ];
  const results = await Promise.all(sessions.map((session, i) => outcome(session.changePassword(ALICE.password, `${NEW_PASSWORD} ${i}`))));
  t.same(results.map((r) => r.code).sort(), ['BAD_CREDENTIALS', 'OK'], 'one OK, the other refused');
  const winner = results.findIndex((r) => r.code === 'OK');
  const client = await fixture.client({ pid: 9 });
  t.ok((await client.login(ALICE.name, `${NEW_PASSWORD} ${winner}`)).active, "the winner's password works");
  await expectCode(t, client.login(ALICE.name, `${NEW_PASSWORD} ${1 - winner}`), 'BAD_CREDENTIALS', "the loser's does not");
});

t.test('the request bytes, passwords included, are zeroed once handled', async (t) => {
  const seen: StampedRequest[] = [];
  const { client } = await serveWrapped(t, (inner) => ({
    listen: (handler) =>
      inner.listen((request) => {
        seen.push(request);
        handler(request);
      }),
    reply: (requestId, payload) => inner.reply(requestId, payload),
    close: () => inner.close(),
  }));
  const session = await client.login(ALICE.name, ALICE.password);
  await session.changePassword(ALICE.password, NEW_PASSWORD);
  await expectCode(t, session.changePassword('wrong', 'other'), 'BAD_CREDENTIALS', 'a failing change');
  t.equal(seen.length, 3, 'login and two changes seen by the server');
  for (const [i, request] of seen.entries()) t.ok(request.payload.every((byte) => byte === 0), `request ${i + 1}: every byte zeroed`);
});
