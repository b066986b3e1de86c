/**
 * Crash safety: kill -9 the server while it creates 1,000 keys and signs.
 * After a restart on the same file, every key whose creation was
 * acknowledged is there and usable, every acknowledged signature has its
 * audit row (read-only replies wait for the WAL write, not the fsync),
 * PRAGMA integrity_check is ok (SQLite), and the audit chain verifies.
 * Runs on both backends (VHSM_TEST_BACKEND).
 */
import t from 'tap';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { openAdminStore } from '../../server/admin-store.js';
import type { Logger } from '../../server/log.js';
import { Store } from '../../server/storage.js';
import { runCrashChild } from './helpers/crash-run.js';
import { ALICE, createDatabase, freshStoreLocation, startFixture, tempDir, testBackend } from './helpers/fixture.js';
import { selectAll } from './helpers/raw.js';

const TOTAL = 1_000;
const KILL_AFTER = 500;

t.test(`SIGKILL during ${TOTAL} key creations loses no acknowledged key`, async (t) => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const { location: dbPath, drop } = await freshStoreLocation(dir);
  t.teardown(drop);
  await createDatabase(dbPath, [ALICE]);

  const outcome = await runCrashChild(dbPath, TOTAL, KILL_AFTER);
  const { acknowledged, signed } = outcome;
  t.equal(outcome.signal, 'SIGKILL', 'the server was killed');
  t.notOk(outcome.finished, `killed mid-way (after ${acknowledged.length} of ${TOTAL} acknowledged)`);
  t.ok(acknowledged.length >= KILL_AFTER, `${acknowledged.length} creations were acknowledged`);
  if (testBackend() === 'sqlite') {
    t.comment(`WAL present after the kill: ${existsSync(`${dbPath}-wal`)}`);
    const store = Store.open(dbPath);
    t.equal(store.db.pragma('integrity_check', { simple: true }), 'ok', 'PRAGMA integrity_check is ok');
    store.close();
  }
  const admin = await openAdminStore(dbPath);
  const audit = await admin.verifyAudit();
  await admin.close();
  t.ok(audit.ok, `the audit chain verifies (${audit.rows} rows)`);
  const stored = new Set((await selectAll(dbPath, 'SELECT key_id FROM keys')).map((row) => row.key_id as string));
  const [signRows] = await selectAll(dbPath, "SELECT count(*) AS n FROM audit WHERE op = 'sign' AND result = 'OK'");
  t.ok(signed > 0, `${signed} signatures were acknowledged meanwhile`);
  t.ok(Number(signRows!.n) >= signed, `every acknowledged signature has its audit row (${Number(signRows!.n)} rows)`);
  const missing = acknowledged.filter((keyId) => !stored.has(keyId));
  t.same(missing, [], 'every acknowledged key is in the DB');
  t.ok(stored.size >= acknowledged.length, `${stored.size} keys stored (acknowledged ones plus perhaps a few in flight)`);

  // Restart a server on the same file and use every acknowledged key.
  const fixture = await startFixture({ users: [] });
  t.teardown(() => fixture.close());
  await fixture.server.stop();
  const { VhsmServer } = await import('../../server/server.js');
  // The restarted server's warnings and errors, to say why if a request fails.
  const serverLog: string[] = [];
  const logger: Logger = {
    log: (level, text, fields) => {
      if (level === 'warn' || level === 'error') serverLog.push(`${level}: ${text} ${JSON.stringify(fields ?? {})}`);
    },
  };
  fixture.server = await VhsmServer.open({ storagePath: dbPath, pbkdf2Iterations: 1_000, logger });
  fixture.server.serve(fixture.hub.createServerTransport());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const message = new Uint8Array([4, 2]);
  let usable = 0;
  const failures: string[] = [];
  await Promise.all(
    acknowledged.map(async (keyId) => {
      try {
        const signature = await session.sign(keyId, message);
        const publicKey = createPublicKey({ key: Buffer.from(await session.publicKey(keyId)), format: 'der', type: 'spki' });
        const algorithm = publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
        if (verify(algorithm, message, publicKey, signature)) usable += 1;
      } catch (error) {
        failures.push(`${keyId}: ${(error as Error).message}`);
      }
    }),
  );
  t.same(failures.slice(0, 5), [], `no request failed after the restart (${failures.length} did; server log: ${serverLog.slice(0, 5).join(' | ') || 'empty'})`);
  t.equal(usable, acknowledged.length, 'every acknowledged key signs, and the signature verifies with its exported public key');
});
