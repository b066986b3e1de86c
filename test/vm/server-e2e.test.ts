/**
 * The real thing: vhsm-server (the binary) in the VHSM container, the
 * client library in application containers, everything through the module.
 * A signature made in a container verifies with openssl outside it; sessions
 * and logins are bound to the container and process the kernel stamped.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PidContainer } from './lib/container.js';
import { World } from './lib/world.js';
import type { Agent } from './lib/netns.js';

const ALICE = { user: 'alice', password: 'correct horse battery staple' };
const dir = mkdtempSync('/tmp/vhsm-e2e-');
const db = join(dir, 'vhsm.db');
const message = Buffer.from('pay 100 EUR to Bob, ref 2026-11-24');

function admin(args: string[], input?: string): string {
  return execFileSync(process.execPath, ['dist/tools/vhsm-admin.js', '--db', db, ...args], { input, encoding: 'utf8' });
}

async function startServer(world: World): Promise<Agent> {
  const server = world.agent('vhsm', 'dist/tools/vhsm-server.js', ['--db', db, '--pbkdf2-iterations', '1000']);
  for (let i = 0; i < 300 && !(await world.admin.stats()).server; i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await world.admin.stats()).server) throw new Error(`vhsm-server did not register: ${server.stderr}`);
  return server;
}

async function ask<T = Record<string, unknown>>(agent: Agent, cmd: Record<string, unknown>): Promise<T> {
  agent.send(cmd);
  return agent.expect<T>(String(cmd.cmd));
}

const world = await World.create({ ct101: 101, ct102: 102 });
t.teardown(() => world.destroy());
admin(['init']);
admin(['user', 'add', ALICE.user, '--ctid', '101', '--iterations', '1000', '--password-stdin'], `${ALICE.password}\n${ALICE.password}\n`);
let server = await startServer(world);

t.test('ECDSA P-256 and Ed25519 signatures made in a container verify with openssl', async (t) => {
  const app = world.agent('ct101', 'app');
  await app.expect('ready');
  for (const [keyType, verify] of [
    ['ec-p256', (pem: string, sig: string) => ['dgst', '-sha256', '-verify', pem, '-signature', sig, join(dir, 'msg')]],
    ['ed25519', (pem: string, sig: string) => ['pkeyutl', '-verify', '-pubin', '-inkey', pem, '-rawin', '-in', join(dir, 'msg'), '-sigfile', sig]],
  ] as const) {
    const r = await ask<{ ok: boolean; pem: string; signature: string; verified: boolean; code?: string }>(app, {
      cmd: 'sign-flow', ...ALICE, keyType, message: message.toString('base64'),
    });
    t.ok(r.ok, `${keyType}: generated, signed, exported ${r.code ?? ''}`);
    t.ok(r.verified, `${keyType}: the server verifies its own signature`);
    writeFileSync(join(dir, 'msg'), message);
    writeFileSync(join(dir, `${keyType}.pem`), r.pem);
    writeFileSync(join(dir, `${keyType}.sig`), Buffer.from(r.signature, 'base64'));
    const out = execFileSync('openssl', verify(join(dir, `${keyType}.pem`), join(dir, `${keyType}.sig`)), { encoding: 'utf8' });
    t.match(out, /Verified OK|Signature Verified Successfully/, `${keyType}: openssl verifies the signature with the exported public key`);
    writeFileSync(join(dir, 'msg'), Buffer.concat([message, Buffer.from('!')]));
    t.throws(() => execFileSync('openssl', verify(join(dir, `${keyType}.pem`), join(dir, `${keyType}.sig`)), { stdio: 'pipe' }), `${keyType}: and rejects it for another message`);
  }
});

t.test('login and sessions are bound to what the kernel stamped', async (t) => {
  const outsider = world.agent('ct102', 'app');
  await outsider.expect('ready');
  t.match(await ask(outsider, { cmd: 'login', ...ALICE }), { ok: false, code: 'CONTAINER_NOT_ALLOWED' }, 'right password from a container not in the user\'s set: refused');

  const home = world.agent('ct101', 'app', [], { newPidNs: true }); // PID 1 in its container
  await home.expect('ready');
  const login = await ask<{ ok: boolean; session: string }>(home, { cmd: 'login', ...ALICE });
  t.ok(login.ok, 'login at home');
  t.match(await ask(home, { cmd: 'raw', op: 'listKeys', body: {}, session: login.session }), { ok: true }, 'the session works at home');

  const neighbour = world.agent('ct101', 'app');
  await neighbour.expect('ready');
  t.match(await ask(neighbour, { cmd: 'raw', op: 'listKeys', body: {}, session: login.session }), { ok: false, code: 'SESSION_INVALID' }, 'another process in the same container: SESSION_INVALID');
  t.match(await ask(outsider, { cmd: 'raw', op: 'listKeys', body: {}, session: login.session }), { ok: false, code: 'SESSION_INVALID' }, 'another container: SESSION_INVALID');
  const twin = world.agent('ct102', 'app', [], { newPidNs: true }); // also PID 1, in another container
  await twin.expect('ready');
  t.match(await ask(twin, { cmd: 'raw', op: 'listKeys', body: {}, session: login.session }), { ok: false, code: 'SESSION_INVALID' }, 'the same PID number in another container: SESSION_INVALID');
});

t.test('a session belongs to its process: not to one that forged its PID, nor to a later one that got it', async (t) => {
  const container = await PidContainer.start();
  t.teardown(() => container.stop());
  await world.admin.bind(103, { pid: container.initPid });
  admin(['user', 'allow', ALICE.user, '103']);
  const listKeys = (session: string) => ({ cmd: 'raw', op: 'listKeys', body: {}, session });

  const first = world.agent(null, 'app', [], { enter: container.enter });
  const pid = (await first.expect<{ nspid: number[] }>('ready')).nspid[1]!;
  const login = await ask<{ ok: boolean; session: string }>(first, { cmd: 'login', ...ALICE });
  t.ok(login.ok, `a process of a container with its own pid namespace (PID ${pid} there) logs in`);
  t.match(await ask(first, listKeys(login.session)), { ok: true }, 'its session works for it');

  // Any process can make a pid namespace and choose its PID there.
  const forger = world.agent(null, 'app', [], { enter: container.enter, newPidNs: true, preamble: `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid` });
  const forged = (await forger.expect<{ nspid: number[] }>('ready')).nspid;
  t.equal(forged.at(-1), pid, 'a forger has the same PID number in a pid namespace of its own');
  t.match(await ask(forger, listKeys(login.session)), { ok: false, code: 'SESSION_INVALID' }, 'and cannot use the session: the kernel stamps the PID the container sees');

  // PIDs are reused once their process is gone.
  first.send({ cmd: 'exit' });
  await first.exited;
  const heir = world.agent(null, 'app', [], { enter: container.enter, preamble: `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid` });
  t.equal((await heir.expect<{ nspid: number[] }>('ready')).nspid[1], pid, 'a later process of the container gets the same PID');
  t.match(await ask(heir, listKeys(login.session)), { ok: false, code: 'SESSION_INVALID' }, 'and cannot use the session either: its start time differs');
  t.match(await ask(heir, { cmd: 'login', ...ALICE }), { ok: true }, 'it logs in on its own');
});

t.test('SIGTERM stops the server cleanly; kill -9 loses nothing acknowledged', async (t) => {
  const app = world.agent('ct101', 'app');
  await app.expect('ready');
  const before = await ask<{ ok: boolean; keyId: string }>(app, { cmd: 'sign-flow', ...ALICE, keyType: 'ec-p256', message: message.toString('base64') });
  t.ok(before.ok, 'a key created before the crash');
  await server.kill('SIGKILL');
  t.equal((await world.admin.stats()).server, undefined, 'kill -9: the module dropped the registration');
  t.match(await ask(app, { cmd: 'login', ...ALICE }), { ok: false, code: 'ECONNREFUSED' }, 'clients are refused while no server runs');
  server = await startServer(world);
  const login = await ask<{ ok: boolean; session: string }>(app, { cmd: 'login', ...ALICE });
  t.match(await ask(app, { cmd: 'raw', op: 'keyInfo', body: { keyId: before.keyId }, session: login.session }), { ok: true }, 'after restart the acknowledged key is there');

  server.kill('SIGTERM');
  t.equal(await server.exited, 0, 'SIGTERM: exit status 0');
  t.equal((await world.admin.stats()).server, undefined, 'and unregistered');
  const verify = admin(['audit', 'verify', '--json']);
  t.match(verify, /"ok":\s*true/, 'the audit chain verifies');
  const audit = admin(['audit', 'show', '--json']);
  t.match(audit, /"ctid":\s*101/, 'audit rows carry the stamped CTID');
  t.match(audit, /"ctid":\s*102/, 'including the refused container');
  t.match(audit, /"procStart":\s*"\d+"/, 'and the stamped process start');
});
