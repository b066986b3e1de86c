/**
 * Who the kernel says a sender is: the PID, uid and gid its *container*
 * sees, whatever namespaces the sender made for itself; a sender the
 * container's pid namespace cannot see is refused; and a RESPONSE carries
 * nothing that another container's traffic changes.
 */
import t from 'tap';
import { readlinkSync } from 'node:fs';
import { PidContainer } from './lib/container.js';
import { checkInvariants } from './lib/counters.js';
import { World } from './lib/world.js';
import { VHSM_A_PAYLOAD, VHSM_A_STATUS } from '../../netlink/vhsm-uapi.js';

type One = { ok: boolean; code?: string; message?: string; stamp?: { ctid: number; pid: number; uid: number; gid: number } };
type Ready = { nspid: number[]; uid: number; gid: number };

const nsInode = (path: string): number => Number(/\[(\d+)\]/.exec(readlinkSync(path))![1]);

t.test('a container with its own pid namespace: stamps in its view, never in one a sender made', async (t) => {
  const world = await World.create({});
  const container = await PidContainer.start();
  t.teardown(async () => {
    container.stop();
    await world.destroy();
  });
  await world.admin.bind(201, { pid: container.initPid });
  const binding = (await world.admin.list()).find((b) => b.ctid === 201);
  t.equal(binding?.pidnsIno, nsInode(`/proc/${container.initPid}/ns/pid`), "bound by pid: the stamps' pid namespace is the container's");
  await world.echoServer();

  const app = world.agent(null, 'client', ['201'], { enter: container.enter, env: { VHSM_PID_LEVEL: '1' } });
  const appReady = await app.expect<Ready>('ready');
  t.equal(appReady.nspid.length, 2, 'a process of the container: host PID and container PID');
  app.send({ cmd: 'one' });
  const own = await app.expect<One>('one');
  t.match(own, { ok: true, stamp: { ctid: 201, pid: appReady.nspid[1], uid: 0, gid: 0 } }, 'stamped with the PID the container sees');

  // Any process may make a user and a pid namespace and be "root" and
  // "PID 1" there. The stamp stays what the container sees.
  const nested = world.agent(null, 'client', ['201'], { enter: container.enter, nestedUnprivileged: true, env: { VHSM_PID_LEVEL: '1' } });
  const nestedReady = await nested.expect<Ready>('ready');
  t.same([nestedReady.nspid.length, nestedReady.nspid.at(-1), nestedReady.uid, nestedReady.gid], [3, 1, 0, 0], 'the nested sender is root and PID 1 in its own namespaces');
  nested.send({ cmd: 'one' });
  const stamped = await nested.expect<One>('one');
  t.match(stamped, { stamp: { ctid: 201, pid: nestedReady.nspid[1], uid: 1000, gid: 1000 } }, 'stamped with its container PID and its real uid/gid, not 1 and 0');
  t.not(stamped.stamp?.pid, 1, 'not PID 1');
  t.not(stamped.stamp?.uid, 0, 'not uid 0');

  // In the container's netns but outside its pid namespace: a sibling pid
  // namespace (another container sharing the netns), or the host's.
  const sibling = world.agent(null, 'client', ['201'], { enter: ['nsenter', '-t', String(container.initPid), '-n', '--'], newPidNs: true });
  await sibling.expect('ready');
  sibling.send({ cmd: 'one' });
  t.match(await sibling.expect<One>('one'), { ok: false, code: 'EACCES', message: /not in the container's pid namespace/ }, 'a sibling pid namespace: EACCES');
  const hostView = world.agent(null, 'client', ['201'], { enter: ['nsenter', '-t', String(container.initPid), '-n', '--'] });
  await hostView.expect('ready');
  hostView.send({ cmd: 'one' });
  t.match(await hostView.expect<One>('one'), { ok: false, code: 'EACCES' }, "the host's pid namespace (above the container's): EACCES");

  const stats = await world.admin.stats();
  t.equal(stats.counters.foreign_pid, 2n, 'both refusals counted as foreign_pid');
  checkInvariants(t, stats);
});

t.test('bindings: the pid namespace is part of the binding', async (t) => {
  const world = await World.create({});
  const container = await PidContainer.start();
  t.teardown(async () => {
    container.stop();
    await world.destroy();
  });
  const netnsPath = `/proc/${container.initPid}/ns/net`;
  await world.admin.bind(201, { netnsPath });
  t.equal((await world.admin.list())[0]?.pidnsIno, nsInode('/proc/self/ns/pid'), "bound by netns alone: PIDs are counted as the host (the admin's pid namespace) sees them");
  await world.admin.bind(201, { netnsPath });
  t.pass('binding the same again is a no-op');
  await t.rejects(world.admin.bind(201, { netnsPath, pidnsPid: container.initPid }), { errno: 17, message: /EEXIST: .*another pidns/ }, 'the same netns and CTID with another pid namespace: EEXIST');
  await world.admin.unbind(201);
  await world.admin.bind(201, { netnsPath, pidnsPid: container.initPid });
  t.equal((await world.admin.list())[0]?.pidnsIno, nsInode(`/proc/${container.initPid}/ns/pid`), 'bound by netns with --pidns-pid: the container pid namespace');
  await t.rejects(world.admin.bind(202, { netnsPath: world.netns('spare'), pidnsPid: 2 ** 31 - 1 }), { errno: 3, message: /ESRCH/ }, 'a pidns pid that does not exist: ESRCH');
  t.notOk((await world.admin.list()).some((b) => b.ctid === 202), 'and nothing bound');
});

t.test("RESPONSE carries nothing another container's traffic changes", async (t) => {
  const world = await World.create({ ct101: 101, ct102: 102 });
  t.teardown(() => world.destroy());
  await world.echoServer();
  const observer = world.agent('ct101', 'raw');
  await observer.expect('ready');
  const busy = await world.client('ct102', 102);
  const ask = async (): Promise<Record<string, unknown>> => {
    observer.send({ cmd: 'request', hex: 'cafe0123' });
    return observer.expect('request');
  };
  const first = await ask();
  busy.send({ cmd: 'burst', count: 500, concurrency: 16, size: 64 });
  t.match(await busy.expect('burst', 300_000), { ok: 500 }, 'another container sent 500 requests meanwhile');
  const second = await ask();
  t.match(first, { ok: true }, 'a response came');
  t.same(second, first, 'the second RESPONSE (attributes, flags, everything but our own seq) is identical to the first');
  const types = (first.message as { attrs: { type: number }[] }).attrs.map((a) => a.type);
  t.same(types, [VHSM_A_STATUS, VHSM_A_PAYLOAD], 'STATUS and PAYLOAD only: no request id');
});
