/**
 * ARCHITECTURE §8, the attacks the server owns: another user's key, a
 * session used from elsewhere, login from a container not in the user's set,
 * and sessions that must end (logout, idle, user removed, container denied).
 * Each attack gets its error and changes nothing in the DB.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { SessionTable, DEFAULT_SESSION_LIMITS } from '../../server/sessions.js';
import { openAdminStore } from '../../server/admin-store.js';
import { ALICE, BOB, identitiesAreFree, identity, startFixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';
import { auditRows, call, rawLogin, snapshot } from './helpers/raw.js';

t.test("another user's keys are invisible and unusable", async (t) => {
  const fixture = await startFixture({ users: [ALICE, { ...BOB, ctids: [101] }] });
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const alice = await client.login(ALICE.name, ALICE.password);
  const bob = await client.login(BOB.name, BOB.password);
  const ec = await alice.generateKey({ type: 'ec-p256', keyId: 'alice-signing' });
  const mac = await alice.generateKey({ type: 'hmac', keyId: 'alice-mac', extractable: true });
  const before = (await snapshot(fixture.dbPath));

  const data = new Uint8Array([1, 2, 3]);
  await expectCode(t, bob.sign(ec.keyId, data), 'KEY_NOT_FOUND', 'bob signs with alice\'s key');
  await expectCode(t, bob.verify(ec.keyId, data, new Uint8Array(70)), 'KEY_NOT_FOUND', 'bob verifies with it');
  await expectCode(t, bob.publicKey(ec.keyId), 'KEY_NOT_FOUND', 'bob exports its public key');
  await expectCode(t, bob.keyInfo(ec.keyId), 'KEY_NOT_FOUND', 'bob reads its info');
  await expectCode(t, bob.mac(mac.keyId, data), 'KEY_NOT_FOUND', 'bob MACs with alice\'s secret');
  await expectCode(t, bob.exportKey(mac.keyId, 'raw'), 'KEY_NOT_FOUND', 'bob exports alice\'s extractable secret');
  await expectCode(t, bob.deleteKey(ec.keyId), 'KEY_NOT_FOUND', 'bob deletes it');
  t.same(await bob.listKeys(), [], 'bob lists none of alice\'s keys');
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed');

  // Ids are per user: bob may use the same id, and learns nothing about alice's.
  const bobs = await bob.generateKey({ type: 'ed25519', keyId: 'alice-signing' });
  t.equal(bobs.keyId, 'alice-signing', 'bob can create a key with the same id (no cross-user existence oracle)');
  t.equal((await alice.keyInfo('alice-signing')).type, 'ec-p256', 'alice still has her own key under that id');
  t.equal((await bob.keyInfo('alice-signing')).type, 'ed25519', 'bob sees his');
});

t.test('a session id is usable only from its (CTID, netns cookie, PID)', async (t) => {
  const fixture = await startFixture({ users: [{ ...ALICE, ctids: [101, 102] }, BOB] });
  t.teardown(() => fixture.close());
  const home = identity({ ctid: 101, pid: 500 });
  const homeTransport = await fixture.connect(home);
  const sessionId = await rawLogin(homeTransport, ALICE.name, ALICE.password);
  const created = await call(homeTransport, { session: sessionId, generateKey: { spec: { type: 1, keyId: 'k1' } } });
  t.equal(created.error, undefined, 'the session works at home');
  const before = (await snapshot(fixture.dbPath));
  const auditBefore = (await auditRows(fixture.dbPath)).length;

  const elsewhere = [
    ['another container (allowed for the same user)', identity({ ctid: 102, pid: 500 })],
    ['another container', identity({ ctid: 103, pid: 500 })],
    // Over the kernel these need other processes: test/vm/server-e2e.test.ts does them.
    ...(identitiesAreFree()
      ? ([
          ['same CTID, another netns cookie', { ...home, netnsCookie: home.netnsCookie + 1n }],
          ['same container, another PID', { ...home, pid: 501 }],
          ['same PID, another process (reused PID: another start time)', { ...home, procStart: home.procStart + 1n }],
          ['same PID number in another container', identity({ ctid: 102, pid: 500, netnsCookie: home.netnsCookie })],
        ] as const)
      : []),
  ] as const;
  for (const [label, stamp] of elsewhere) {
    const thief = await fixture.connect(stamp);
    for (const request of [
      { sign: { keyId: 'k1', data: new Uint8Array(1) } },
      { listKeys: {} },
      { deleteKey: { keyId: 'k1' } },
      { generateKey: { spec: { type: 1 } } },
      { logout: {} },
    ]) {
      const reply = await call(thief, { session: sessionId, ...request });
      t.equal(reply.error, 'SESSION_INVALID', `${label}: ${Object.keys(request)[0]} refused`);
    }
    // Same answer as for a session id that exists nowhere.
    const random = await call(thief, { session: randomBytes(16), listKeys: {} });
    t.equal(random.error, 'SESSION_INVALID', `${label}: a random session id gets the same answer`);
    t.equal(random.message, (await call(thief, { session: sessionId, listKeys: {} })).message, `${label}: same message too`);
  }
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed');
  const list = await call(homeTransport, { session: sessionId, listKeys: {} });
  t.equal(list.response.listKeys?.keys?.length, 1, 'the session still works at home (the thief could not log it out)');
  const refused = (await auditRows(fixture.dbPath)).slice(auditBefore).filter((row) => row.result === 'SESSION_INVALID');
  t.equal(refused.length, elsewhere.length * 6 + elsewhere.length, 'every refused attempt is audited');
  t.ok(refused.every((row) => row.user === ''), 'the audit names no user for foreign session ids');
});

t.test('login only from the user\'s containers', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const before = (await snapshot(fixture.dbPath));
  const outsider = await fixture.client({ ctid: 102 });
  await expectCode(t, outsider.login(ALICE.name, ALICE.password), 'CONTAINER_NOT_ALLOWED', 'right password, container 102 not in alice\'s set');
  await expectCode(t, outsider.login(ALICE.name, 'wrong'), 'BAD_CREDENTIALS', 'wrong password from there');
  await expectCode(t, (await fixture.client({ ctid: 0 })).login(ALICE.name, ALICE.password), 'CONTAINER_NOT_ALLOWED', 'CTID 0 is not special');
  const after = JSON.parse((await snapshot(fixture.dbPath))) as { login_failures: { ctid: number; failures: number }[] };
  t.same(
    after.login_failures.map((row) => [row.ctid, row.failures]),
    [
      [0, 1],
      [102, 2],
    ],
    'refused logins count as failures for (alice, that container)',
  );
  t.same(JSON.parse(before).keys, (after as unknown as { keys: unknown[] }).keys, 'no keys touched');
  const insider = await fixture.client({ ctid: 101 });
  t.ok((await insider.login(ALICE.name, ALICE.password)).active, 'container 101 logs in');
});

t.test('sessions end: logout wipes keys, idle timeout, user deleted, container denied', async (t) => {
  let now = Date.now();
  const fixture = await startFixture({ sessionIdleTimeoutMs: 300, clock: () => now });
  t.teardown(() => fixture.close());
  const client = await fixture.client();

  const idle = await client.login(ALICE.name, ALICE.password);
  const key = await idle.generateKey({ type: 'ed25519' });
  now += 301;
  await expectCode(t, idle.sign(key.keyId, new Uint8Array(1)), 'SESSION_INVALID', 'after the idle timeout');
  t.equal(fixture.server.stats.sessions, 0, 'the expired session is gone from the server');

  const busy = await client.login(ALICE.name, ALICE.password);
  for (let i = 0; i < 4; i++) {
    now += 250;
    await busy.sign(key.keyId, new Uint8Array(1));
  }
  t.pass('activity keeps a session alive past the idle timeout (4 × 250 ms)');

  const store = await openAdminStore(fixture.dbPath);
  await store.denyContainers(ALICE.name, [101]);
  await expectCode(t, busy.sign(key.keyId, new Uint8Array(1)), 'SESSION_INVALID', 'container removed from the set by the admin');

  const bobClient = await fixture.client({ ctid: 102 });
  const bob = await bobClient.login(BOB.name, BOB.password);
  await bob.generateKey({ type: 'hmac', keyId: 'b' });
  await store.deleteUser(BOB.name);
  await store.close();
  await expectCode(t, bob.listKeys(), 'SESSION_INVALID', 'user deleted by the admin');
  await expectCode(t, bobClient.login(BOB.name, BOB.password), 'BAD_CREDENTIALS', 'deleted user cannot log in');
});

t.test('session table: logout and expiry wipe the auth key and cached keys', async (t) => {
  let now = 1_000;
  const table = new SessionTable({ ...DEFAULT_SESSION_LIMITS, idleTimeoutMs: 100 }, () => now);
  const sender = identity();
  const authKey = randomBytes(32);
  const id = table.open(sender, { userId: 1, username: 'alice' }, authKey);
  const session = table.lookup(id, sender)!;
  session.keys.set('k', { rowId: 1, keyId: 'k', keyType: 3, usages: 0, extractable: false, loaded: {} });
  t.ok(table.close(id, sender), 'logout');
  t.ok(authKey.every((byte) => byte === 0), 'auth key zeroed on logout');
  t.equal(session.keys.size, 0, 'key cache emptied on logout');
  t.equal(table.lookup(id, sender), undefined, 'gone');

  const key2 = randomBytes(32);
  const id2 = table.open(sender, { userId: 1, username: 'alice' }, key2);
  now += 101;
  t.equal(table.sweep(), 1, 'the sweeper ends idle sessions');
  t.ok(key2.every((byte) => byte === 0), 'auth key zeroed on expiry');
  t.equal(table.lookup(id2, sender), undefined);

  const limited = new SessionTable({ ...DEFAULT_SESSION_LIMITS, maxSessionsPerContainer: 2 }, () => now);
  limited.open(sender, { userId: 1, username: 'a' }, randomBytes(32));
  limited.open(sender, { userId: 1, username: 'a' }, randomBytes(32));
  const third = randomBytes(32);
  t.throws(() => limited.open(sender, { userId: 1, username: 'a' }, third), { code: 'RESOURCE_EXHAUSTED' }, 'per-container session limit');
  t.ok(third.every((byte) => byte === 0), 'the refused session\'s key is zeroed too');
  limited.closeAll();
});

t.test('usages, key types and extractability are enforced', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const verifyOnly = await session.generateKey({ type: 'ec-p256', usages: ['verify'] });
  const ed = await session.generateKey({ type: 'ed25519' });
  const hmac = await session.generateKey({ type: 'hmac' });
  const before = (await snapshot(fixture.dbPath));
  const data = new Uint8Array(8);
  await expectCode(t, session.sign(verifyOnly.keyId, data), 'USAGE_NOT_ALLOWED', 'sign with a verify-only key');
  await expectCode(t, session.sign(ed.keyId, data, { algorithm: 'ecdsa-sha256' }), 'WRONG_KEY_TYPE', 'ECDSA with an Ed25519 key');
  await expectCode(t, session.sign(hmac.keyId, data), 'USAGE_NOT_ALLOWED', 'sign with an HMAC key');
  await expectCode(t, session.mac(ed.keyId, data), 'USAGE_NOT_ALLOWED', 'MAC with a signing key');
  await expectCode(t, session.publicKey(hmac.keyId), 'WRONG_KEY_TYPE', 'public key of a secret key');
  await expectCode(t, session.exportKey(ed.keyId, 'pkcs8-der'), 'NOT_EXTRACTABLE', 'export of a non-extractable key pair');
  await expectCode(t, session.exportKey(hmac.keyId, 'raw'), 'NOT_EXTRACTABLE', 'export of a non-extractable secret');
  await expectCode(t, session.generateKey({ type: 'ec-p256', usages: ['mac'] }), 'USAGE_NOT_ALLOWED', 'MAC usage on an EC key');
  await expectCode(t, session.generateKey({ type: 'hmac', lengthBytes: 8 }), 'INVALID_ARGUMENT', 'an 8-byte HMAC key');
  await expectCode(t, session.generateKey({ type: 'ec-p256', lengthBytes: 32 }), 'INVALID_ARGUMENT', 'a length for a key pair');
  await expectCode(t, session.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: randomBytes(100) }), 'INVALID_ARGUMENT', 'garbage PKCS#8');
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed');

  const exportable = await session.generateKey({ type: 'hmac', extractable: true, lengthBytes: 48 });
  const secret = await session.exportKey(exportable.keyId, 'raw');
  t.equal(secret.length, 48, 'an extractable secret exports');
});

t.test('audit records never hold secrets', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const transport = await fixture.connect();
  const sessionId = await rawLogin(transport, ALICE.name, ALICE.password);
  await call(transport, { session: sessionId, generateKey: { spec: { type: 3, keyId: 'secret-key' } } });
  await call(transport, { login: { username: ALICE.name, password: Buffer.from('a wrong password') } });
  await fixture.server.stop();
  const { readFileSync, existsSync } = await import('node:fs');
  const files = [fixture.dbPath, `${fixture.dbPath}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file));
  for (const needle of [ALICE.password, 'a wrong password', Buffer.from(sessionId).toString('hex'), Buffer.from(sessionId).toString('base64')]) {
    t.notOk(files.some((file) => file.includes(Buffer.from(needle))), `the DB files do not contain ${needle.length > 20 ? 'the session id / password' : 'a password'}`);
  }
  t.notOk(files.some((file) => file.includes(Buffer.from(sessionId))), 'nor the raw session id');
  await fixture.restart();
});
