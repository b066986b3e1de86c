/**
 * Every refusal the module owes a hostile or unlucky container, each with its
 * defined errno, through the real module.
 */
import t from 'tap';
import { World, VHSM_CTID } from './lib/world.js';
import { setParam } from './lib/module.js';
import {
  VHSM_CMD_CT_BIND, VHSM_CMD_STATS_GET, VHSM_CMD_REQUEST, VHSM_CMD_DELIVER, VHSM_CMD_RESPONSE, VHSM_CMD_SERVER_REGISTER,
  VHSM_A_CTID, VHSM_A_PID, VHSM_A_PAYLOAD, VHSM_A_REQ_ID, VHSM_A_NETNS_COOKIE, VHSM_A_UID, VHSM_PAYLOAD_MAX,
} from '../../netlink/vhsm-uapi.js';
import type { Agent } from './lib/netns.js';

type One = { ok: boolean; code?: string; message?: string };
type Genl = { ok: boolean; code?: string; errno?: number; message?: string };

async function one(client: Agent, size = 16): Promise<One> {
  client.send({ cmd: 'one', size });
  return client.expect<One>('one');
}

async function genl(raw: Agent, op: number, attrs: unknown[] = []): Promise<Genl> {
  raw.send({ cmd: 'genl', op, attrs });
  return raw.expect<Genl>('genl');
}

t.test('who may ask: unbound containers, and the allow_unbound switch', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  world.netns('loose');
  await world.echoServer();
  const loose = await world.client('loose', 0);
  t.match(await one(loose), { ok: false, code: 'EACCES' }, 'a request from an unbound netns: EACCES');
  t.match((await one(loose)).message, /CTID|bound/i, 'with a message that says why');
  setParam('allow_unbound', true);
  t.match(await one(loose), { ok: true }, 'allow_unbound: served, stamped CTID 0');
  setParam('allow_unbound', false);
  t.match(await one(loose), { ok: false, code: 'EACCES' }, 'and refused again when switched off');
  const s = await world.admin.stats();
  t.equal(s.counters.unbound, 3n, 'refusals counted');
});

t.test('who may serve: only the VHSM container, with CAP_NET_ADMIN, one at a time', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const intruder = world.agent('ct101', 'echo-server');
  t.match(await intruder.next(), { type: 'register-failed', code: 'EACCES' }, 'from a client container: EACCES');
  const weak = world.agent('vhsm', 'echo-server', [], { unprivileged: true });
  t.match(await weak.next(), { type: 'register-failed', code: 'EPERM' }, 'in the VHSM netns without CAP_NET_ADMIN: EPERM');
  await world.echoServer();
  const second = world.agent('vhsm', 'echo-server');
  t.match(await second.next(), { type: 'register-failed', code: 'EBUSY' }, 'a second server: EBUSY');
  const s = await world.admin.stats();
  t.equal(s.server?.ctid, VHSM_CTID, 'the first server stays registered');
  const client = await world.client('ct101', 101);
  t.match(await one(client), { ok: true }, 'and keeps serving');
});

t.test('nobody but the server may reply', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const server = await world.echoServer('silent');
  const client = await world.client('ct101', 101);
  client.send({ cmd: 'one', size: 8 }); // stays pending: the server is silent
  server.send({ cmd: 'stats' });
  while ((await server.expect<{ received: number }>('stats')).received < 1) server.send({ cmd: 'stats' });

  const fromClient = world.agent('ct101', 'raw');
  await fromClient.expect('ready');
  fromClient.send({ cmd: 'replies', from: 1, to: 20 });
  t.same((await fromClient.expect<{ codes: Record<string, number> }>('replies')).codes, { EPERM: 20 }, 'REPLY from a client container: EPERM for every guessed id');
  const sameNs = world.agent('vhsm', 'raw');
  await sameNs.expect('ready');
  sameNs.send({ cmd: 'replies', from: 1, to: 20 });
  t.same((await sameNs.expect<{ codes: Record<string, number> }>('replies')).codes, { EPERM: 20 }, 'REPLY from another root socket in the VHSM netns: EPERM');
  const s = await world.admin.stats();
  t.equal(s.pending, 1, 'the real request is still pending, untouched');
  t.equal(s.counters.bad_reply, 40n, 'forged replies counted');
  t.equal(s.counters.responses, 0n, 'nothing was delivered to the client');
});

t.test('clients cannot stamp themselves or use kernel-only commands', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  await world.echoServer();
  const raw = world.agent('ct101', 'raw');
  await raw.expect('ready');
  const payload = { type: VHSM_A_PAYLOAD, hex: '00' };
  for (const [name, forged] of [
    ['CTID', { type: VHSM_A_CTID, u32: VHSM_CTID }],
    ['PID', { type: VHSM_A_PID, u32: 1 }],
    ['UID', { type: VHSM_A_UID, u32: 0 }],
    ['REQ_ID', { type: VHSM_A_REQ_ID, u64: '1' }],
    ['NETNS_COOKIE', { type: VHSM_A_NETNS_COOKIE, u64: '1' }],
    ['an unknown attribute', { type: 200, u32: 1 }],
  ] as const) {
    const r = await genl(raw, VHSM_CMD_REQUEST, [payload, forged]);
    t.match(r, { ok: false, code: 'EINVAL' }, `REQUEST carrying ${name}: rejected by policy`);
  }
  t.match(await genl(raw, VHSM_CMD_REQUEST, []), { ok: false, code: 'EINVAL' }, 'REQUEST without a payload: EINVAL');
  for (const [name, op] of [['DELIVER', VHSM_CMD_DELIVER], ['RESPONSE', VHSM_CMD_RESPONSE], ['an unknown command', 99]] as const) {
    t.match(await genl(raw, op, [payload]), { ok: false, code: 'EOPNOTSUPP' }, `${name} from userspace: EOPNOTSUPP`);
  }
  t.match(await genl(raw, VHSM_CMD_CT_BIND, [{ type: VHSM_A_CTID, u32: 7 }, { type: VHSM_A_PID, u32: 1 }]), { ok: false, code: 'EPERM' }, 'CT_BIND from a container (even as root): EPERM');
  t.match(await genl(raw, VHSM_CMD_STATS_GET), { ok: false, code: 'EPERM' }, 'STATS_GET from a container: EPERM');
  t.match(await genl(raw, VHSM_CMD_SERVER_REGISTER), { ok: false, code: 'EACCES' }, 'SERVER_REGISTER from a client container: EACCES');
  const s = await world.admin.stats();
  t.equal(s.counters.forwarded, 0n, 'none of it reached the server');
});

t.test('sizes, quotas and the absent server', async (t) => {
  const world = await World.create({ ct101: 101, ct102: 102 });
  t.teardown(() => world.destroy());
  const client = await world.client('ct101', 101);
  t.match(await one(client), { ok: false, code: 'ECONNREFUSED' }, 'no server: ECONNREFUSED');
  const server = await world.echoServer();
  t.match(await one(client, VHSM_PAYLOAD_MAX), { ok: true }, `a payload of exactly ${VHSM_PAYLOAD_MAX} bytes passes`);
  t.match(await one(client, VHSM_PAYLOAD_MAX + 1), { ok: false, code: 'EMSGSIZE' }, 'one byte more: EMSGSIZE');
  t.match(await one(client, 200_000), { ok: false }, 'far more: refused');

  await server.kill();
  await world.echoServer('silent');
  setParam('timeout_ms', 500);
  setParam('max_pending_per_ct', 4);
  client.send({ cmd: 'burst', count: 10, concurrency: 10, size: 8 });
  const burst = await client.expect<{ errors: Record<string, number> }>('burst');
  t.same(burst.errors, { ENOBUFS: 6, ETIMEDOUT: 4 }, 'per-container quota of 4: six ENOBUFS, four pending until the deadline');

  setParam('max_pending', 6);
  const other = await world.client('ct102', 102);
  client.send({ cmd: 'burst', count: 4, concurrency: 4, size: 8 });
  other.send({ cmd: 'burst', count: 4, concurrency: 4, size: 8 });
  const [a, b] = await Promise.all([client.expect<{ errors: Record<string, number> }>('burst'), other.expect<{ errors: Record<string, number> }>('burst')]);
  t.equal((a.errors.EAGAIN ?? 0) + (b.errors.EAGAIN ?? 0), 2, 'global table of 6: two EAGAIN');
  t.equal((a.errors.ETIMEDOUT ?? 0) + (b.errors.ETIMEDOUT ?? 0), 6, 'the six admitted time out');
  const s = await world.admin.stats();
  t.equal(s.counters.quota, 6n, 'quota refusals counted');
  t.equal(s.counters.server_busy, 2n, 'busy refusals counted');
  t.equal(s.pending, 0, 'nothing left pending');
});

t.test('bindings: checked input, unique CTIDs', async (t) => {
  const world = await World.create({ ct101: 101 });
  t.teardown(() => world.destroy());
  const path = world.netns('spare');
  const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('succeeded'), (e: unknown) => e);
  t.match(await failure(world.admin.bind(101, { netnsPath: path })), { errno: 17, message: /EEXIST/ }, 'a CTID bound elsewhere: EEXIST');
  t.match(await failure(world.admin.bind(0, { netnsPath: path })), { message: /EINVAL|ERANGE|CTID/ }, 'CTID 0 is refused');
  t.match(await failure(world.admin.bind(555, { pid: 999_999 })), { errno: 3 }, 'a pid that does not exist: ESRCH');
  t.match(await failure(world.admin.unbind(4242)), { code: 'ENOENT' }, 'unbinding an unknown CTID: ENOENT');
  await world.admin.bind(555, { pid: process.pid });
  t.ok((await world.admin.list()).some((b) => b.ctid === 555), 'bind by pid works (here: the host itself)');
  await world.admin.unbind(555);
  t.notOk((await world.admin.list()).some((b) => b.ctid === 555), 'and unbind');
});
