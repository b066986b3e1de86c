/**
 * Several servers on one PostgreSQL database, as on several hosts: each
 * serves its own clients (its own in-memory transport, its own audit chain).
 *
 * - a key created through one is usable through the other after a login
 *   there (a container that moved keeps its CTID, password and keys);
 * - concurrent wrong passwords through both count into one lockout;
 * - key use counters from both add up (no lost update);
 * - kill -9 of a server process mid-load loses no acknowledged key or audit row;
 * - PostgreSQL restarted under load: clients get UNAVAILABLE, then service
 *   resumes without restarting the servers;
 * - vhsm-admin's verify checks every chain.
 */
import t, { type Test } from 'tap';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { dirname, join } from 'node:path';
import { VhsmClient, VhsmError } from '../../client/index.js';
import { openAdminStore } from '../../server/admin-store.js';
import { VhsmServer, type VhsmServerOptions } from '../../server/server.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { ALICE, BOB, TEST_ITERATIONS, createDatabase, identity } from './helpers/fixture.js';
import { runCrashChild } from './helpers/crash-run.js';
import { expectCode } from './helpers/expect.js';
import { freshPgDatabase, startOwnPgCluster } from './helpers/pg.js';
import { selectAll } from './helpers/raw.js';

const LOCKOUT = { freeAttempts: 100, backoffBaseMs: 1, backoffMaxMs: 1, lockAfter: 6 };

interface Host {
  readonly server: VhsmServer;
  client(ctid: number, pid?: number): Promise<VhsmClient>;
  stop(): Promise<void>;
}

async function startHost(url: string, serverId: string, extra: Partial<VhsmServerOptions> = {}): Promise<Host> {
  const hub = new MemoryTransportHub();
  const server = await VhsmServer.open({ storagePath: url, serverId, pbkdf2Iterations: TEST_ITERATIONS, lockout: LOCKOUT, ...extra });
  server.serve(hub.createServerTransport());
  const clients: VhsmClient[] = [];
  return {
    server,
    async client(ctid, pid = 4242) {
      const client = await VhsmClient.connect(hub.connect(identity({ ctid, pid })), { timeoutMs: 20_000 });
      clients.push(client);
      return client;
    },
    async stop() {
      await Promise.allSettled(clients.map((client) => client.close()));
      await server.stop();
    },
  };
}

async function twoHosts(t: Test): Promise<{ url: string; a: Host; b: Host }> {
  const db = await freshPgDatabase();
  await createDatabase(db.url, [ALICE, BOB]);
  const a = await startHost(db.url, 'host-a');
  const b = await startHost(db.url, 'host-b');
  t.teardown(async () => {
    await a.stop();
    await b.stop();
    await db.drop();
  });
  return { url: db.url, a, b };
}

t.test('a key created on host A signs on host B after a login there; counters from both add up; every chain verifies', async (t) => {
  const { url, a, b } = await twoHosts(t);
  const onA = await (await a.client(101)).login(ALICE.name, ALICE.password);
  const key = await onA.generateKey({ type: 'ec-p256', keyId: 'follows' });
  const message = Buffer.from('signed on the other host');

  // The container "moves": same CTID, another host.
  const onB = await (await b.client(101)).login(ALICE.name, ALICE.password);
  const signature = await onB.sign(key.keyId, message);
  const spki = createPublicKey({ key: Buffer.from(await onA.publicKey(key.keyId)), format: 'der', type: 'spki' });
  t.ok(verify('sha256', message, spki, signature), 'the signature made on B verifies with the public key from A');

  const PER_HOST = 200;
  await Promise.all(
    [onA, onB].flatMap((session) => Array.from({ length: 4 }, async () => {
      for (let i = 0; i < PER_HOST / 4; i++) await session.sign(key.keyId, message);
    })),
  );
  await a.stop();
  await b.stop();
  const [row] = await selectAll(url, "SELECT use_count FROM keys WHERE key_id = 'follows'");
  t.equal(row!.use_count, 2 * PER_HOST + 1, 'use_count is the sum of both hosts’ signatures (no lost update)');

  const admin = await openAdminStore(url);
  const report = await admin.verifyAudit();
  await admin.close();
  t.ok(report.ok, `audit verifies: ${report.rows} rows in chains ${report.chains.map((c) => `${c.chain}:${c.headSeq}`).join(', ')}`);
  t.same(report.chains.map((c) => c.chain), ['host-a', 'host-b'], 'one chain per server');
  const signRows = await selectAll(url, "SELECT chain, count(*) AS n FROM audit WHERE op = 'sign' AND result = 'OK' GROUP BY chain ORDER BY chain");
  t.same(signRows.map((r) => [r.chain, r.n]), [['host-a', PER_HOST], ['host-b', PER_HOST + 1]], 'every signature audited on the chain of the host that made it');
});

t.test('a key deleted or replaced on host B while a session on host A holds it; a container removed on B', async (t) => {
  const { url, a, b } = await twoHosts(t);
  const onA = await (await a.client(101)).login(ALICE.name, ALICE.password);
  const onB = await (await b.client(101)).login(ALICE.name, ALICE.password);
  const message = Buffer.from('held on A');
  const first = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const second = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = (pair: typeof first) => pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  const verifiesWith = (pair: typeof first, signature: Uint8Array) => verify('sha256', message, pair.publicKey, signature);

  await onA.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: pkcs8(first), keyId: 'held' });
  t.ok(verifiesWith(first, await onA.sign('held', message)), 'A signs: the key is in its session now');
  await onB.deleteKey('held');
  // A's server was not told: the check made with the audit row refuses it.
  await expectCode(t, onA.sign('held', message), 'KEY_NOT_FOUND', 'deleted on B: refused on A');

  await onA.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: pkcs8(first), keyId: 'held' });
  t.ok(verifiesWith(first, await onA.sign('held', message)), 'imported again on A and held');
  await onB.deleteKey('held');
  await onB.importKey({ type: 'ec-p256', format: 'pkcs8-der', keyData: pkcs8(second), keyId: 'held' });
  await expectCode(t, onA.sign('held', message), 'KEY_NOT_FOUND', 'replaced on B: the old material is refused on A');
  const signature = await onA.sign('held', message);
  t.ok(verifiesWith(second, signature) && !verifiesWith(first, signature), 'the retry signs with the replacement');

  const admin = await openAdminStore(url);
  await admin.denyContainers(ALICE.name, [101]);
  await admin.close();
  await expectCode(t, onA.sign('held', message), 'SESSION_INVALID', 'container removed: the next request on A is refused');
  await expectCode(t, onB.sign('held', message), 'SESSION_INVALID', 'and on B');

  const rows = await selectAll(url, "SELECT chain, result FROM audit WHERE op = 'sign' ORDER BY chain, seq");
  t.same(rows.filter((row) => row.chain === 'host-a').map((row) => row.result),
    ['OK', 'KEY_NOT_FOUND', 'OK', 'KEY_NOT_FOUND', 'OK', 'SESSION_INVALID'], "A's chain records each sign as its client saw it");
  const verifier = await openAdminStore(url);
  t.ok((await verifier.verifyAudit()).ok, 'every chain verifies');
  await verifier.close();
});

t.test('wrong passwords through both hosts at once count into one lockout', async (t) => {
  const { url, a, b } = await twoHosts(t);
  const clients = await Promise.all([a.client(101, 1), a.client(101, 2), b.client(101, 3), b.client(101, 4)]);
  const codes = await Promise.all(
    clients.map(async (client) => {
      const seen: string[] = [];
      for (let i = 0; i < 4; i++) seen.push(await client.login(ALICE.name, `wrong ${i}`).then(() => 'OK', (e: VhsmError) => e.code));
      return seen;
    }),
  );
  const all = codes.flat();
  t.equal(all.filter((c) => c === 'OK').length, 0, 'no wrong password got in');
  const [row] = await selectAll(url, 'SELECT failures, locked FROM login_failures');
  t.equal(row!.locked, true, 'the (user, container) is locked in the shared table');
  t.equal(row!.failures, all.filter((c) => c === 'BAD_CREDENTIALS').length, 'every BAD_CREDENTIALS answer, from either host, was counted once');
  t.ok((row!.failures as number) >= LOCKOUT.lockAfter, `${row!.failures as number} failures counted`);
  // Each host runs one attempt per (user, container) at a time; two hosts may each be evaluating one when the count reaches lockAfter.
  const guesses = all.filter((c) => c === 'BAD_CREDENTIALS').length;
  t.ok(guesses >= LOCKOUT.lockAfter && guesses <= LOCKOUT.lockAfter + 1, `${guesses} guesses evaluated across both hosts: lockAfter (${LOCKOUT.lockAfter}), plus at most one per other host`);
  t.same([...new Set(all.filter((c) => c !== 'BAD_CREDENTIALS'))], ['LOCKED_OUT'], 'the rest were refused as locked out');
  await t.rejects((await b.client(101, 9)).login(ALICE.name, ALICE.password), { code: 'LOCKED_OUT' }, 'the right password is refused on B too');
  await t.rejects((await a.client(101, 9)).login(ALICE.name, ALICE.password), { code: 'LOCKED_OUT' }, 'and on A');
  const admin = await openAdminStore(url);
  t.equal(await admin.unlockUser(ALICE.name), 1, 'the admin unlocks once, for every host');
  await admin.close();
  await t.resolves((await b.client(101, 10)).login(ALICE.name, ALICE.password), 'then B lets the user in');
});

t.test('kill -9 of one server process mid-load: no acknowledged key or audit row is lost', async (t) => {
  const db = await freshPgDatabase();
  await createDatabase(db.url, [ALICE]);
  const survivor = await startHost(db.url, 'survivor');
  t.teardown(async () => {
    await survivor.stop();
    await db.drop();
  });
  const TOTAL = 400;
  const KILL_AFTER = 150;
  // Host B keeps signing with its own key meanwhile.
  const bSession = await (await survivor.client(101, 77)).login(ALICE.name, ALICE.password);
  const bKey = await bSession.generateKey({ type: 'ed25519', keyId: 'survivor-key' });
  let loading = true;
  let bSigned = 0;
  const bLoad = (async () => {
    while (loading) {
      await bSession.sign(bKey.keyId, new Uint8Array(1));
      bSigned += 1;
    }
  })();
  const outcome = await runCrashChild(db.url, TOTAL, KILL_AFTER, 'doomed');
  const { acknowledged, signed } = outcome;
  loading = false;
  await bLoad;
  t.equal(outcome.signal, 'SIGKILL', 'the server process was killed');
  t.notOk(outcome.finished, `mid-way (${acknowledged.length} of ${TOTAL} creations acknowledged, ${signed} signatures)`);
  t.ok(bSigned > 0, `the other server kept serving (${bSigned} signatures)`);

  const stored = new Set((await selectAll(db.url, 'SELECT key_id FROM keys')).map((r) => r.key_id as string));
  t.same(acknowledged.filter((keyId) => !stored.has(keyId)), [], 'every acknowledged key is in the database');
  const [doomed] = await selectAll(db.url, "SELECT count(*)::int AS n FROM audit WHERE chain = 'doomed' AND op = 'sign' AND result = 'OK'");
  t.ok((doomed!.n as number) >= signed, `every acknowledged signature of the killed server has its audit row (${doomed!.n as number} ≥ ${signed})`);
  const created = await selectAll(db.url, "SELECT key_id FROM audit WHERE chain = 'doomed' AND op = 'generateKey' AND result = 'OK'");
  const createdAudited = new Set(created.map((r) => r.key_id as string));
  t.same(acknowledged.filter((keyId) => !createdAudited.has(keyId)), [], 'and every acknowledged creation');

  // The surviving host serves the dead one's keys (its container moved there).
  const moved = await (await survivor.client(101, 78)).login(ALICE.name, ALICE.password);
  let usable = 0;
  for (const keyId of acknowledged.slice(0, 50)) if ((await moved.sign(keyId, new Uint8Array(2))).length > 0) usable += 1;
  t.equal(usable, 50, 'the first 50 acknowledged keys sign on the surviving host');
  const admin = await openAdminStore(db.url);
  const report = await admin.verifyAudit();
  await admin.close();
  t.ok(report.ok, `every chain verifies, the killed server's included (${report.chains.map((c) => `${c.chain}:${c.headSeq}`).join(', ')})`);
});

t.test('PostgreSQL restarted under load: UNAVAILABLE, then service resumes without a server restart', async (t) => {
  const cluster = startOwnPgCluster();
  t.teardown(() => cluster.stop());
  await createDatabase(cluster.url, [ALICE]);
  const host = await startHost(cluster.url, 'host-r', { storagePoolSize: 4 });
  t.teardown(() => host.stop());
  const session = await (await host.client(101)).login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ec-p256', keyId: 'through-restart' });

  const outcomes = new Map<string, number>();
  let running = true;
  const ok: number[] = [];
  const load = Array.from({ length: 4 }, async () => {
    while (running) {
      const code = await session.sign(key.keyId, new Uint8Array(3)).then(
        () => 'OK',
        (e: VhsmError) => e.code,
      );
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      if (code === 'OK') ok.push(Date.now());
      else await new Promise((r) => setTimeout(r, 20));
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  const restartedAt = Date.now();
  await cluster.restart();
  const backAt = Date.now();
  // Give the pool time to reconnect and the clients to succeed again.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !ok.some((time) => time > backAt + 200)) await new Promise((r) => setTimeout(r, 50));
  running = false;
  await Promise.all(load);
  t.comment(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; restart took ${backAt - restartedAt} ms`);
  t.same([...outcomes.keys()].filter((code) => code !== 'OK' && code !== 'UNAVAILABLE'), [], 'the only error clients saw is UNAVAILABLE');
  t.ok((outcomes.get('UNAVAILABLE') ?? 0) > 0, 'clients saw UNAVAILABLE while the database was down');
  t.ok(ok.some((time) => time > backAt + 200), 'signatures succeed again after the restart, with the same server and session');
  const more = await session.generateKey({ type: 'ed25519', keyId: 'after-restart' });
  t.equal(more.keyId, 'after-restart', 'and changes commit again');
  const admin = await openAdminStore(cluster.url);
  const report = await admin.verifyAudit();
  await admin.close();
  t.ok(report.ok, 'the audit chain verifies across the restart');
  const [rows] = await selectAll(cluster.url, "SELECT count(*)::int AS n FROM audit WHERE op = 'sign' AND result = 'OK'");
  t.ok((rows!.n as number) >= ok.length, `every acknowledged signature has its row (${rows!.n as number} ≥ ${ok.length})`);
});

/**
 * A PostgreSQL backend SIGKILLed: the postmaster ends every session and
 * recovers from its WAL on disk (as after a crash of the database host).
 * What a reply promised must hold: under durability 'all' every acknowledged
 * key and signature has its rows; under 'changes' (the default) every
 * acknowledged change does — a read-only request's audit row is committed
 * with synchronous_commit=off, so the last few milliseconds of them may go
 * with the crash (docs/install.md: the window is 3 × wal_writer_delay).
 */
for (const durability of ['all', 'changes'] as const) {
  t.test(`kill -9 of a PostgreSQL backend under load (durability '${durability}'): nothing acknowledged is lost`, async (t) => {
    const cluster = startOwnPgCluster();
    t.teardown(() => cluster.stop());
    await createDatabase(cluster.url, [ALICE]);
    let rowsWrittenAgain = 0;
    const logger = { log: (_level: string, message: string, fields?: Record<string, unknown>) => void (message === 'audit rows lost by PostgreSQL written again' && (rowsWrittenAgain += Number(fields?.rows))) };
    const host = await startHost(cluster.url, 'host-k', { storagePoolSize: 4, durability, logger });
    t.teardown(() => host.stop());
    const session = await (await host.client(101)).login(ALICE.name, ALICE.password);
    const key = await session.generateKey({ type: 'ec-p256', keyId: 'before-kill' });

    const acknowledgedKeys: string[] = [];
    let signed = 0;
    const codes = new Set<string>();
    let running = true;
    const note = (error: unknown) => codes.add(error instanceof VhsmError ? error.code : String(error));
    const pause = () => new Promise((r) => setTimeout(r, 20));
    const load = [
      ...Array.from({ length: 3 }, async () => {
        while (running) await session.sign(key.keyId, new Uint8Array(4)).then(() => (signed += 1), (e) => (note(e), pause()));
      }),
      (async () => {
        for (let i = 0; running; i++) {
          const keyId = `k-${i}`;
          await session.generateKey({ type: 'hmac', keyId }).then(() => acknowledgedKeys.push(keyId), (e) => (note(e), pause()));
        }
      })(),
    ];
    while (acknowledgedKeys.length < 20) await new Promise((r) => setTimeout(r, 10));
    const backends = await selectAll(cluster.url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'vhsm' AND backend_type = 'client backend'");
    t.ok(backends.length > 0, `the server has ${backends.length} backend(s)`);
    process.kill(backends[0]!.pid as number, 'SIGKILL');
    const killedAt = Date.now();
    const ackedAtKill = { keys: acknowledgedKeys.length, signed };
    // The postmaster restarts its sessions; the server's pool reconnects by itself.
    let resumed = false;
    const deadline = Date.now() + 20_000;
    while (!resumed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      resumed = Date.now() - killedAt > 300 && acknowledgedKeys.length > ackedAtKill.keys + 5;
    }
    running = false;
    await Promise.all(load);
    t.comment(`acknowledged at the kill: ${JSON.stringify(ackedAtKill)}; at the end: ${acknowledgedKeys.length} keys, ${signed} signatures; errors: ${[...codes].join(', ') || 'none'}`);
    t.ok(resumed, 'service resumed without restarting the server');
    t.same([...codes].filter((code) => code !== 'UNAVAILABLE'), [], 'the only error clients saw is UNAVAILABLE');
    await host.stop();

    const stored = new Set((await selectAll(cluster.url, 'SELECT key_id FROM keys')).map((r) => r.key_id as string));
    t.same(acknowledgedKeys.filter((keyId) => !stored.has(keyId)), [], `every acknowledged key is stored (${acknowledgedKeys.length})`);
    const audited = new Set((await selectAll(cluster.url, "SELECT key_id FROM audit WHERE op = 'generateKey' AND result = 'OK'")).map((r) => r.key_id as string));
    t.same(acknowledgedKeys.filter((keyId) => !audited.has(keyId)), [], 'and has its audit row');
    const [row] = await selectAll(cluster.url, "SELECT count(*)::int AS n FROM audit WHERE op = 'sign' AND result = 'OK'");
    // Under 'changes' the unflushed tail PostgreSQL lost is written again by the server.
    t.ok((row!.n as number) >= signed, `every acknowledged signature has its audit row (${row!.n as number} ≥ ${signed}; ${rowsWrittenAgain} written again after the crash)`);
    const admin = await openAdminStore(cluster.url);
    const report = await admin.verifyAudit();
    await admin.close();
    t.ok(report.ok, `the audit chain verifies across the crash (${report.rows} rows)`);
  });
}
