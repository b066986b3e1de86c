/**
 * The 2014 acceptance scenarios (original-vhsm.md §3: login/logout, key
 * management, digest, HMAC, parallel clients), rewritten against this API
 * and run over the in-memory transport. The 2014 artefacts (sequential
 * session ids, empty keys, "OK" for a missing key's info) are deliberately
 * not reproduced.
 */
import t from 'tap';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { VhsmSession } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { ALICE, startFixture } from './helpers/fixture.js';

t.test('login and logout (test_login)', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();

  const s1 = await client.login(ALICE.name, ALICE.password);
  const s2 = await client.login(ALICE.name, ALICE.password);
  t.ok(s1.active && s2.active, 'two sessions for the same user');
  t.equal(s1.idleTimeoutMs, 15 * 60_000, 'default idle timeout is reported');
  t.ok((await s1.digest(new Uint8Array(1))).length === 32, 's1 works');

  await s1.logout();
  t.notOk(s1.active, 's1 ended');
  await s1.logout(); // idempotent on the client side
  await expectCode(t, s1.digest(new Uint8Array(1)), 'SESSION_INVALID', 'operation on a logged-out session');
  t.ok((await s2.digest(new Uint8Array(1))).length === 32, 'logging out s1 leaves s2 alone');

  await expectCode(t, client.login(ALICE.name, 'wrong password'), 'BAD_CREDENTIALS', 'wrong password');
  await expectCode(t, client.login('nobody', 'whatever'), 'BAD_CREDENTIALS', 'unknown user');
  const s3 = await client.login(ALICE.name, ALICE.password);
  t.ok(s3.active, 'login again after logout');
  await s3.logout();
  await s2.logout();
  t.equal(fixture.server.stats.sessions, 0, 'no sessions left on the server');
});

t.test('key management (test_key_mgmt)', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const session = await client.login(ALICE.name, ALICE.password);

  const before = (await session.listKeys()).length;
  t.equal(before, 0, 'a new user has no keys');

  const named = await session.generateKey({ type: 'hmac', keyId: 'some_key_id', lengthBytes: 32, label: 'test key' });
  t.equal(named.keyId, 'some_key_id', 'generate with a chosen id');
  t.equal(named.lengthBytes, 32, 'info reports the secret length');
  t.same(named.usages, ['mac'], 'default usages of an hmac key');
  t.equal(named.extractable, false, 'not extractable by default');
  await expectCode(t, session.generateKey({ type: 'hmac', keyId: 'some_key_id' }), 'KEY_EXISTS', 'same id again');

  const generated = await session.generateKey({ type: 'ec-p256' });
  t.match(generated.keyId, /^[0-9a-f]{32}$/, 'server-chosen id: 32 hex characters');
  t.equal((await session.listKeys()).length, before + 2, 'count after two generations');

  await session.deleteKey('some_key_id');
  await expectCode(t, session.deleteKey('some_key_id'), 'KEY_NOT_FOUND', 'delete again');
  t.equal((await session.listKeys()).length, before + 1, 'count after delete');

  const imported = await session.importKey({ type: 'hmac', keyId: 'some_key_id', format: 'raw', keyData: randomBytes(20) });
  t.equal(imported.keyId, 'some_key_id', 'import under the freed id');
  await expectCode(t, session.importKey({ type: 'hmac', keyId: 'some_key_id', format: 'raw', keyData: randomBytes(20) }), 'KEY_EXISTS', 'import over an occupied id');
  const importedAuto = await session.importKey({ type: 'hmac', format: 'raw', keyData: randomBytes(32) });
  t.match(importedAuto.keyId, /^[0-9a-f]{32}$/, 'import with a server-chosen id');
  await expectCode(t, session.importKey({ type: 'hmac', format: 'raw', keyData: new Uint8Array(0) }), 'INVALID_ARGUMENT', 'empty key import (the 2014 artefact)');

  const ids = (await session.listKeys()).map((key) => key.keyId);
  t.same(ids, [...ids].sort(), 'listed in key id order');
  t.ok(ids.includes(generated.keyId) && ids.includes('some_key_id') && ids.includes(importedAuto.keyId), 'list has every key');

  const info = await session.keyInfo(generated.keyId);
  t.equal(info.type, 'ec-p256');
  t.same(info.usages, ['sign', 'verify']);
  t.equal(info.useCount, 0);
  t.equal(info.lastUsedAt, null, 'never used yet');
  t.ok(Math.abs(info.createdAt.getTime() - Date.now()) < 60_000, 'created just now');
  await session.sign(generated.keyId, new Uint8Array([1]));
  await session.sign(generated.keyId, new Uint8Array([2]));
  const used = await session.keyInfo(generated.keyId);
  t.equal(used.useCount, 2, 'use count follows signatures');
  t.ok(used.lastUsedAt !== null, 'last used is set');
  await expectCode(t, session.keyInfo('no-such-key'), 'KEY_NOT_FOUND', 'info of a missing key (2014 returned OK)');

  await session.logout();
  await expectCode(t, session.listKeys(), 'SESSION_INVALID', 'list after logout');
});

t.test('listing follows pages past 100 keys', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const created = await Promise.all(Array.from({ length: 230 }, (_, i) => session.generateKey({ type: 'hmac', keyId: `k${String(i).padStart(3, '0')}`, label: 'x'.repeat(128) })));
  const listed = await session.listKeys();
  t.equal(listed.length, 230, 'all 230 keys listed across 3 pages');
  t.same(
    listed.map((key) => key.keyId),
    created.map((key) => key.keyId).sort(),
  );
});

t.test('digest (test_digest)', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const message = randomBytes(3072);
  t.same(Buffer.from(await session.digest(message)), createHash('sha256').update(message).digest(), 'SHA-256 of 3072 bytes');
  t.same(Buffer.from(await session.digest(new Uint8Array(0), { algorithm: 'sha256' })), createHash('sha256').digest(), 'SHA-256 of nothing');
  await expectCode(t, session.digest(message, { algorithm: 'sha1' as never }), 'INVALID_ARGUMENT', 'unsupported digest');
  const big = randomBytes(30 * 1024);
  t.same(Buffer.from(await session.digest(big)), createHash('sha256').update(big).digest(), '30 KiB in one request');
  await session.logout();
  await expectCode(t, session.digest(message), 'SESSION_INVALID', 'digest after logout');
});

t.test('HMAC (test_hmac)', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const secret = Buffer.from('abcd'.repeat(4));
  await session.importKey({ type: 'hmac', keyId: 'some_key_id', format: 'raw', keyData: secret });
  const message = randomBytes(3072);
  const expected = createHmac('sha256', secret).update(message).digest();

  const mac = await session.mac('some_key_id', message);
  t.same(Buffer.from(mac), expected, 'HMAC-SHA256 matches node:crypto');
  t.equal(await session.verifyMac('some_key_id', message, mac), true, 'verifies');
  const flipped = new Uint8Array(mac);
  flipped[0]! ^= 1;
  t.equal(await session.verifyMac('some_key_id', message, flipped), false, 'a flipped bit does not verify');
  t.equal(await session.verifyMac('some_key_id', message, mac.subarray(0, 16)), false, 'a truncated MAC does not verify');
  await expectCode(t, session.mac('same_key_id', message), 'KEY_NOT_FOUND', 'unknown key');
  await expectCode(t, session.mac('some_key_id', message, { algorithm: 'hmac-md5' as never }), 'INVALID_ARGUMENT', 'unsupported MAC');
  await session.deleteKey('some_key_id');
  await expectCode(t, session.mac('some_key_id', message), 'KEY_NOT_FOUND', 'MAC with a deleted key');
  await session.logout();
});

t.test('parallel clients (test_parallel): two processes, same user, own keys', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const scenario = async (pid: number, keyId: string): Promise<void> => {
    const client = await fixture.client({ pid });
    const session: VhsmSession = await client.login(ALICE.name, ALICE.password);
    const secret = randomBytes(32);
    await session.importKey({ type: 'hmac', keyId, format: 'raw', keyData: secret });
    await expectCode(t, session.mac(`${keyId}_missing`, new Uint8Array(1)), 'KEY_NOT_FOUND', `${keyId}: unknown key`);
    const messages = Array.from({ length: 50 }, () => randomBytes(1 + Math.floor(Math.random() * 3072)));
    const macs = await Promise.all(messages.map((message) => session.mac(keyId, message)));
    macs.forEach((mac, i) => {
      if (!Buffer.from(mac).equals(createHmac('sha256', secret).update(messages[i]!).digest())) t.fail(`${keyId}: MAC ${i} wrong`);
    });
    await session.deleteKey(keyId);
    await session.logout();
  };
  await Promise.all([scenario(1001, 'some_key_id_1'), scenario(1002, 'some_key_id_2')]);
  t.pass('both scenarios completed with correct MACs');
});
