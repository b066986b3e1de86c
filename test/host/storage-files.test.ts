/**
 * The DB file: created 0600, refused when group/world-accessible, migrated
 * from an empty file, durable pragmas; and the key hierarchy as stored — no
 * key bytes in the file or its WAL, blobs bound to their row and owner,
 * password change rewrapping only the auth key.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deriveMasterKey } from '../../server/kdf.js';
import { SCHEMA_VERSION, Store, StorageError } from '../../server/storage.js';
import { changePassword, findUserByName, openAuthKey } from '../../server/users.js';
import { ALICE, BOB, startFixture, tempDir, TEST_ITERATIONS } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';

function storageCode(fn: () => unknown): string {
  try {
    fn();
    return 'opened';
  } catch (error) {
    return error instanceof StorageError ? error.code : String(error);
  }
}

t.test('file creation, permissions and refusal', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'a.db');
  const oldMask = process.umask(0);
  try {
    Store.open(path, { create: true }).close();
  } finally {
    process.umask(oldMask);
  }
  t.equal(statSync(path).mode & 0o777, 0o600, 'created 0600 even with umask 0');
  t.equal(storageCode(() => Store.open(join(dir, 'missing.db'))), 'NOT_FOUND', 'a missing file is an error, not a new empty DB');
  t.notOk(existsSync(join(dir, 'missing.db')), 'and nothing was created');
  t.equal(storageCode(() => Store.open(path, { create: true, exclusive: true })), 'EXISTS', 'exclusive create refuses an existing file');

  for (const mode of [0o644, 0o640, 0o604, 0o660, 0o606]) {
    chmodSync(path, mode);
    t.equal(storageCode(() => Store.open(path)), 'INSECURE_MODE', `mode ${mode.toString(8)} refused`);
  }
  chmodSync(path, 0o600);
  t.equal(storageCode(() => Store.open(path).close()), 'opened', 'mode 600 accepted');

  writeFileSync(`${path}-wal`, '');
  chmodSync(`${path}-wal`, 0o644);
  t.equal(storageCode(() => Store.open(path)), 'INSECURE_MODE', 'a world-readable WAL file is refused too');
  chmodSync(`${path}-wal`, 0o600);

  const link = join(dir, 'link.db');
  symlinkSync(path, link);
  t.equal(storageCode(() => Store.open(link)), 'NOT_A_FILE', 'a symlink is refused');

  const store = Store.open(path);
  t.equal(store.db.pragma('journal_mode', { simple: true }), 'wal', 'WAL');
  t.equal(store.db.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL');
  t.equal(store.db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys on');
  t.equal(store.db.pragma('secure_delete', { simple: true }), 1, 'secure_delete on');
  store.close();
  t.equal(statSync(path).mode & 0o777, 0o600, 'still 0600 after use');
});

t.test('migrations: from an empty file to the current schema, refusing newer ones', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const path = join(dir, 'empty.db');
  closeSync(openSync(path, 'w', 0o600));
  t.equal(statSync(path).size, 0, 'an empty file');
  const store = Store.open(path);
  t.equal(store.schemaVersion, SCHEMA_VERSION, `migrated to version ${SCHEMA_VERSION}`);
  const tables = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((row) => row.name);
  t.same(tables.filter((name) => !name.startsWith('sqlite_')), ['audit', 'audit_head', 'certificates', 'keys', 'login_failures', 'user_containers', 'users']);
  store.close();
  const again = Store.open(path);
  t.equal(again.schemaVersion, SCHEMA_VERSION, 'reopening runs no migration twice');
  again.db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  again.close();
  t.equal(storageCode(() => Store.open(path)), 'NEWER_SCHEMA', 'a DB from a newer version is refused');
});

/** All key material alice's keys and hierarchy consist of, for the byte scan. */
async function secretsOf(dbPath: string, exports: Uint8Array[]): Promise<{ label: string; bytes: Buffer; whole?: boolean }[]> {
  const store = Store.open(dbPath);
  try {
    const user = findUserByName(store.db, ALICE.name)!;
    const authKey = (await openAuthKey(user, Buffer.from(ALICE.password)))!;
    const master = await deriveMasterKey(Buffer.from(ALICE.password), user.kdfSalt, user.kdfIterations);
    const secrets: { label: string; bytes: Buffer; whole?: boolean }[] = [
      { label: 'auth key', bytes: authKey },
      { label: 'master key', bytes: master },
    ];
    for (const [i, material] of exports.entries()) {
      if (material.length < 48) {
        secrets.push({ label: `exported key ${i}`, bytes: Buffer.from(material) });
        continue;
      }
      // A PKCS#8 blob: its header (the algorithm) and, for EC, its public point are public, and the
      // DB holds them in the clear (the SPKI, listed before login). So the blob is looked for whole,
      // and its private scalar / seed window by window.
      secrets.push({ label: `exported key ${i}`, bytes: Buffer.from(material), whole: true });
      const jwk = createPrivateKey({ key: Buffer.from(material), format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
      secrets.push({ label: `private scalar of key ${i}`, bytes: Buffer.from(jwk.d!, 'base64url') });
    }
    return secrets;
  } finally {
    store.close();
  }
}

t.test('the DB file and its WAL hold no key bytes', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const exports: Uint8Array[] = [];
  for (const type of ['ec-p256', 'ed25519', 'hmac'] as const) {
    const key = await session.generateKey({ type, extractable: true });
    exports.push(await session.exportKey(key.keyId, type === 'hmac' ? 'raw' : 'pkcs8-der'));
    if (type !== 'hmac') await session.sign(key.keyId, new Uint8Array(10));
  }
  const imported = randomBytes(32);
  await session.importKey({ type: 'hmac', keyId: 'imported', format: 'raw', keyData: imported });
  exports.push(imported);
  const secrets = await secretsOf(fixture.dbPath, exports);
  t.equal(secrets.length, 2 + 4 + 2, 'auth key, master key, 4 keys, 2 private scalars');

  const scan = (when: string): void => {
    const files = [fixture.dbPath, `${fixture.dbPath}-wal`].filter(existsSync);
    t.ok(files.length >= 1, `${when}: scanning ${files.map((f) => f.split('/').pop()).join(', ')}`);
    for (const file of files) {
      const content = readFileSync(file);
      for (const secret of secrets) {
        if (content.includes(secret.bytes)) t.fail(`${when}: ${file.split('/').pop()} contains the ${secret.label}`);
        // Any 16-byte window of the secret would be a leak too.
        for (let at = 0; !secret.whole && at + 16 <= secret.bytes.length; at += 8) {
          if (content.includes(secret.bytes.subarray(at, at + 16))) {
            t.fail(`${when}: ${file.split('/').pop()} contains part of the ${secret.label}`);
            break;
          }
        }
      }
    }
    t.pass(`${when}: no secret bytes found`);
  };
  scan('while the server runs (DB + WAL)');
  await session.deleteKey('imported');
  await fixture.server.stop();
  scan('after stop (checkpointed)');
  await fixture.restart();
});

t.test('wrapped blobs are bound to their row and owner', async (t) => {
  const fixture = await startFixture({ users: [ALICE, { ...BOB, ctids: [101] }] });
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const alice = await client.login(ALICE.name, ALICE.password);
  const bob = await client.login(BOB.name, BOB.password);
  await alice.generateKey({ type: 'ec-p256', keyId: 'a1' });
  await alice.generateKey({ type: 'ec-p256', keyId: 'a2' });
  await alice.generateKey({ type: 'ec-p256', keyId: 'a3', usages: ['verify'] });
  await bob.generateKey({ type: 'ec-p256', keyId: 'b1' });
  await alice.logout();
  await bob.logout();

  const db = new Database(fixture.dbPath);
  const blob = (userName: string, keyId: string): Buffer =>
    (db.prepare('SELECT wrapped FROM keys JOIN users ON users.id = keys.user_id WHERE users.name = ? AND key_id = ?').get(userName, keyId) as { wrapped: Buffer }).wrapped;
  const setBlob = (userName: string, keyId: string, wrapped: Buffer): void => {
    db.prepare('UPDATE keys SET wrapped = ? WHERE key_id = ? AND user_id = (SELECT id FROM users WHERE name = ?)').run(wrapped, keyId, userName);
  };
  const [a1, a2, b1] = [blob('alice', 'a1'), blob('alice', 'a2'), blob('bob', 'b1')];
  setBlob('alice', 'a1', a2);
  setBlob('alice', 'a2', a1);
  // Bob's blob moved into alice's row (and alice's a3 into bob's).
  const a3 = blob('alice', 'a3');
  setBlob('alice', 'a3', b1);
  setBlob('bob', 'b1', a3);
  db.close();

  const alice2 = await client.login(ALICE.name, ALICE.password);
  const bob2 = await client.login(BOB.name, BOB.password);
  const data = new Uint8Array(4);
  await expectCode(t, alice2.sign('a1', data), 'KEY_CORRUPTED', 'a1 holding a2\'s blob');
  await expectCode(t, alice2.sign('a2', data), 'KEY_CORRUPTED', 'a2 holding a1\'s blob');
  await expectCode(t, alice2.publicKey('a3'), 'KEY_CORRUPTED', 'alice\'s row holding bob\'s blob');
  await expectCode(t, bob2.sign('b1', data), 'KEY_CORRUPTED', 'bob\'s row holding alice\'s blob');

  // Metadata is bound too: granting "sign" to a verify-only key breaks it.
  const db2 = new Database(fixture.dbPath);
  db2.prepare("UPDATE keys SET wrapped = ? WHERE key_id = 'a3'").run(a3);
  db2.prepare("UPDATE keys SET usages = usages | 2 WHERE key_id = 'a3'").run();
  db2.close();
  await expectCode(t, alice2.sign('a3', data), 'KEY_CORRUPTED', 'usages edited in the DB');
  const db3 = new Database(fixture.dbPath);
  db3.prepare("UPDATE keys SET usages = 4 WHERE key_id = 'a3'").run(); // back to verify only (bit 1 << 2)
  db3.close();
  t.equal((await alice2.keyInfo('a3')).usages.join(), 'verify', 'restored metadata');
  t.ok((await alice2.publicKey('a3')).length > 0, 'restored row works again');

  // Swapping the users' wrapped auth keys: neither can log in.
  const db4 = new Database(fixture.dbPath);
  const authA = (db4.prepare("SELECT wrapped_auth_key AS w FROM users WHERE name = 'alice'").get() as { w: Buffer }).w;
  const authB = (db4.prepare("SELECT wrapped_auth_key AS w FROM users WHERE name = 'bob'").get() as { w: Buffer }).w;
  db4.prepare("UPDATE users SET wrapped_auth_key = ? WHERE name = 'alice'").run(authB);
  db4.prepare("UPDATE users SET wrapped_auth_key = ? WHERE name = 'bob'").run(authA);
  db4.close();
  await expectCode(t, client.login(ALICE.name, ALICE.password), 'BAD_CREDENTIALS', 'alice with bob\'s auth key blob');
  await expectCode(t, client.login(BOB.name, BOB.password), 'BAD_CREDENTIALS', 'bob with alice\'s auth key blob');
});

t.test('password change rewraps only the auth key; keys work with the new password only', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const before = await client.login(ALICE.name, ALICE.password);
  const key = await before.generateKey({ type: 'ed25519' });
  const signature = await before.sign(key.keyId, new Uint8Array([7]));
  await before.logout();
  const blobsBefore = new Database(fixture.dbPath, { readonly: true }).prepare('SELECT wrapped FROM keys').all();

  const store = Store.open(fixture.dbPath);
  await t.rejects(
    changePassword(store, { name: ALICE.name, oldPassword: Buffer.from('wrong'), newPassword: Buffer.from('new pass'), iterations: TEST_ITERATIONS, nowMs: Date.now() }),
    { code: 'BAD_PASSWORD' },
    'the current password is required',
  );
  await changePassword(store, {
    name: ALICE.name,
    oldPassword: Buffer.from(ALICE.password),
    newPassword: Buffer.from('a brand new passphrase'),
    iterations: TEST_ITERATIONS * 2,
    nowMs: Date.now(),
  });
  t.equal(findUserByName(store.db, ALICE.name)!.kdfIterations, TEST_ITERATIONS * 2, 'the iteration count can be raised on change');
  store.close();

  const blobsAfter = new Database(fixture.dbPath, { readonly: true }).prepare('SELECT wrapped FROM keys').all();
  t.same(blobsAfter, blobsBefore, 'user keys were not rewrapped');
  await expectCode(t, client.login(ALICE.name, ALICE.password), 'BAD_CREDENTIALS', 'the old password no longer works');
  const after = await client.login(ALICE.name, 'a brand new passphrase');
  t.equal(await after.verify(key.keyId, new Uint8Array([7]), signature), true, 'the old key verifies its old signature');
  t.ok((await after.sign(key.keyId, new Uint8Array([8]))).length === 64, 'and signs with the new password');
});
