/**
 * vhsm-admin on PostgreSQL (init, users, audit verify over several chains,
 * a URL with a password refused) and `vhsm-admin migrate` SQLite →
 * PostgreSQL → SQLite: no secret is decrypted on the way, the audit chain
 * verifies at each step (the SQLite chain keeps its hashes in PostgreSQL),
 * and every key still signs with the same public key afterwards.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VhsmClient } from '../../client/index.js';
import { VhsmServer } from '../../server/server.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { ALICE, BOB, TEST_ITERATIONS, createDatabase, identity, tempDir } from './helpers/fixture.js';
import { freshPgDatabase } from './helpers/pg.js';
import { selectAll } from './helpers/raw.js';

const tool = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'vhsm-admin.js');

function admin(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [tool, ...args], { input, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function withServer<T>(location: string, serverId: string, fn: (client: VhsmClient) => Promise<T>): Promise<T> {
  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ storagePath: location, serverId, pbkdf2Iterations: TEST_ITERATIONS });
  server.serve(hub.createServerTransport());
  const client = await VhsmClient.connect(hub.connect(identity({ ctid: 101 })));
  try {
    return await fn(client);
  } finally {
    await client.close();
    await server.stop();
  }
}

t.test('vhsm-admin on PostgreSQL: init, users, verify across chains', async (t) => {
  const db = await freshPgDatabase();
  t.teardown(() => db.drop());
  const withPassword = db.url.replace('vhsm@', 'vhsm:hunter2@');
  const refused = admin(['--db', withPassword, 'init']);
  t.equal(refused.status, 3, 'a URL with a password is refused');
  t.notMatch(refused.stderr, /hunter2/, 'and the password is not echoed');
  t.equal(admin(['--db', db.url, 'user', 'list']).status, 3, 'before init: no schema');
  t.equal(admin(['--db', db.url, 'init', '--json']).status, 0, 'init creates the schema');
  t.equal(admin(['--db', db.url, 'user', 'add', 'alice', '--ctid', '101', '--iterations', '1000', '--password-stdin'], `${ALICE.password}\n`).status, 0, 'user add');
  await withServer(db.url, 'host-1', async (client) => (await client.login(ALICE.name, ALICE.password)).generateKey({ type: 'ed25519', keyId: 'k' }));
  await withServer(db.url, 'host-2', async (client) => (await client.login(ALICE.name, ALICE.password)).sign('k', new Uint8Array(1)));
  const verified = admin(['--db', db.url, 'audit', 'verify']);
  t.equal(verified.status, 0, 'verify passes');
  t.match(verified.stdout, /admin@\d+:[0-9a-f]{64}, host-1@\d+:[0-9a-f]{64}, host-2@\d+:[0-9a-f]{64}/, 'and prints every chain head as an anchor');
  const anchor = /host-1@\d+:[0-9a-f]{64}/.exec(verified.stdout)![0];
  t.equal(admin(['--db', db.url, 'audit', 'verify', '--anchor', anchor]).status, 0, 'an anchor of a chain verifies');

  // The superuser (not the server's role) edits a row: verify names the chain and the row.
  await selectAll(db.url, 'ALTER TABLE audit DISABLE TRIGGER audit_no_update');
  await selectAll(db.url, "UPDATE audit SET result = 'KEY_NOT_FOUND' WHERE chain = 'host-2' AND seq = 2");
  const broken = admin(['--db', db.url, 'audit', 'verify']);
  t.equal(broken.status, 7, 'a broken chain exits 7 (AUDIT_BROKEN)');
  t.match(broken.stdout.split('\n')[1], /chain "host-2" seq 2:/, 'the first problem names the chain and the row');
});

t.test('migrate SQLite → PostgreSQL → SQLite: keys keep working, audit verifies', async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const sqlitePath = join(dir, 'source.db');
  await createDatabase(sqlitePath, [ALICE, BOB]);
  const keyIds = ['ec', 'ed', 'p384'] as const;
  const publicKeys = await withServer(sqlitePath, 'unused', async (client) => {
    const session = await client.login(ALICE.name, ALICE.password);
    const spki = new Map<string, Buffer>();
    for (const [keyId, type] of [['ec', 'ec-p256'], ['ed', 'ed25519'], ['p384', 'ec-p384']] as const) {
      await session.generateKey({ type, keyId });
      spki.set(keyId, Buffer.from(await session.publicKey(keyId)));
      await session.sign(keyId, new Uint8Array([1]));
    }
    await client.login(ALICE.name, 'wrong').catch(() => undefined); // a failure counter to carry over
    return spki;
  });
  const sourceVerify = admin(['--db', sqlitePath, 'audit', 'verify', '--json']);
  const sourceHead = JSON.parse(sourceVerify.stdout) as { headSeq: number; headHash: string };

  const pgDb = await freshPgDatabase();
  t.teardown(() => pgDb.drop());
  const toPg = admin(['migrate', '--from', sqlitePath, '--to', pgDb.url, '--json']);
  t.equal(toPg.status, 0, `migrate to PostgreSQL: ${toPg.stderr}`);
  t.match(JSON.parse(toPg.stdout), { users: 2, keys: 3 }, 'users and keys copied');
  const pgVerify = admin(['--db', pgDb.url, 'audit', 'verify', '--anchor', `@${sourceHead.headSeq}:${sourceHead.headHash}`]);
  t.equal(pgVerify.status, 0, 'the copied chain verifies in PostgreSQL against the SQLite head as an anchor');
  t.equal(admin(['migrate', '--from', sqlitePath, '--to', pgDb.url]).status, 5, 'a second copy into a non-empty database is refused');
  const [failures] = await selectAll(pgDb.url, 'SELECT failures FROM login_failures');
  t.equal(failures?.failures, 1, 'login failures copied');

  const message = Buffer.from('after the move');
  const useAll = async (location: string, serverId: string) =>
    withServer(location, serverId, async (client) => {
      const session = await client.login(ALICE.name, ALICE.password);
      let good = 0;
      for (const keyId of keyIds) {
        const signature = await session.sign(keyId, message);
        const key = createPublicKey({ key: publicKeys.get(keyId)!, format: 'der', type: 'spki' });
        if (verify(key.asymmetricKeyType === 'ed25519' ? null : keyId === 'p384' ? 'sha384' : 'sha256', message, key, signature)) good += 1;
      }
      await session.generateKey({ type: 'hmac', keyId: `new-on-${serverId}` });
      return good;
    });
  t.equal(await useAll(pgDb.url, 'pg-host'), 3, 'every key signs on PostgreSQL, verified with its original public key');

  const back = join(dir, 'back.db');
  const toSqlite = admin(['migrate', '--from', pgDb.url, '--to', back, '--json']);
  t.equal(toSqlite.status, 0, `migrate back to SQLite: ${toSqlite.stderr}`);
  t.equal(admin(['--db', back, 'audit', 'verify']).status, 0, 'the merged chain verifies in SQLite');
  const migrated = await selectAll(back, "SELECT key_id FROM audit WHERE op = 'admin:migrate'");
  t.match(String(migrated[0]?.key_id), /pg-host@\d+:[0-9a-f]{64}/, 'an admin:migrate row records the source chain heads');
  t.equal(await useAll(back, 'sqlite-again'), 3, 'every key signs again on the SQLite copy');
  const [count] = await selectAll(back, "SELECT count(*) AS n FROM keys WHERE key_id = 'new-on-pg-host'");
  t.equal(count?.n, 1, 'the key created on PostgreSQL came back too');
});
