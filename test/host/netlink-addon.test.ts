/**
 * The addon against the host kernel's generic netlink controller (no module
 * needed): family resolution, errors with extended ack, many requests in
 * flight, receive overruns, close semantics, and the event loop staying
 * alive exactly as long as it should.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createNativeSocket, loadNetlinkAddon, type NativeSocketError } from '../../netlink/addon.js';
import { attr, encodeAttrs } from '../../netlink/attributes.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_GETFAMILY,
  GENL_ID_CTRL,
  NETLINK_GENERIC,
  NLM_F_ACK,
  NLM_F_REQUEST,
} from '../../netlink/constants.js';
import { decodeFamily, resolveFamily } from '../../netlink/ctrl.js';
import { NetlinkError } from '../../netlink/errors.js';
import { encodeGenlmsg } from '../../netlink/genl.js';
import { GenlSocket } from '../../netlink/genl-socket.js';
import { decodeNlmsgs, type NlMessage } from '../../netlink/message.js';

const moduleUrl = (path: string): string => new URL(path, import.meta.url).href;

function systemError(fn: () => unknown): NativeSocketError {
  try {
    fn();
  } catch (error) {
    return error as NativeSocketError;
  }
  throw new Error('expected a throw');
}

t.test('addon: socket options, bind, and Node-style errors', async (t) => {
  const { NetlinkSocket } = loadNetlinkAddon();
  const s = new NetlinkSocket(NETLINK_GENERIC);
  t.teardown(() => s.close());
  const portid = s.bind();
  t.ok(Number.isInteger(portid) && portid > 0, `kernel-assigned port id ${portid}`);
  t.ok(s.setRecvBuffer(1 << 20) >= 1 << 20, 'receive buffer set (the kernel reports about double)');
  s.setExtAck(true);
  s.setStrictCheck(true);
  s.setCapAck(false);

  const big = systemError(() => s.send(new Uint8Array(8 << 20)));
  t.match(big, { code: 'EMSGSIZE', errno: -90, syscall: 'sendto' }, 'a datagram over the send buffer: EMSGSIZE');
  t.ok(big instanceof Error);
  t.match(big.message, /^sendto EMSGSIZE: /);

  const proto = systemError(() => new NetlinkSocket(99));
  t.match(proto, { code: 'EPROTONOSUPPORT', errno: -93, syscall: 'socket' }, 'bad protocol: EPROTONOSUPPORT');
  t.throws(() => new NetlinkSocket(-1), RangeError, 'negative protocol refused before the syscall');
  t.throws(() => s.send('x' as unknown as Uint8Array), TypeError, 'send wants a Uint8Array');
  t.throws(() => s.start(42 as unknown as () => void), TypeError, 'start wants a function');

  t.equal(s.closed, false);
  s.close();
  s.close();
  t.equal(s.closed, true, 'close is idempotent');
  t.match(systemError(() => s.send(new Uint8Array(16))), { code: 'EBADF', errno: -9, syscall: 'sendto' }, 'send after close: EBADF');
  t.match(systemError(() => s.bind()), { code: 'EBADF' });
});

t.test('addon: datagrams arrive through the callback with the sender port id', async (t) => {
  const s = createNativeSocket(NETLINK_GENERIC);
  t.teardown(() => s.close());
  s.bind();
  const got = new Promise<{ messages: NlMessage[]; sender: number | undefined }>((resolve, reject) => {
    const messages: NlMessage[] = [];
    s.start((error, datagram, sender) => {
      if (error) return reject(error);
      messages.push(...decodeNlmsgs(datagram!));
      if (messages.length === 2) resolve({ messages, sender });
    });
  });
  const request = encodeGenlmsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: 1, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 42 }, [
    attr.string(CTRL_ATTR_FAMILY_NAME, 'nlctrl'),
  ]);
  t.equal(s.send(request), request.length, 'send returns the bytes sent');
  const { messages, sender } = await got;
  t.equal(sender, 0, 'from the kernel');
  t.match(messages[0], { type: GENL_ID_CTRL, seq: 42 }, 'the NEWFAMILY reply');
  t.match(messages[1], { type: 2, seq: 42 }, 'then the ACK (NLMSG_ERROR 0)');
  s.stop();
  s.stop();
  t.pass('stop is idempotent');
});

t.test('GenlSocket: resolve "nlctrl" over NETLINK_GENERIC', async (t) => {
  const sock = GenlSocket.open();
  t.teardown(() => sock.close());
  const family = await resolveFamily(sock, 'nlctrl');
  t.equal(family.id, 16, 'nlctrl is GENL_ID_CTRL');
  t.equal(family.name, 'nlctrl');
  t.ok(family.version >= 1, `version ${family.version}`);
  t.ok(family.mcastGroups.has('notify'), 'multicast group "notify" listed');
  t.equal(sock.inFlight, 0, 'nothing left in flight');
});

t.test('GenlSocket: resolving "vhsm" without the module is ENOENT', async (t) => {
  const sock = GenlSocket.open();
  t.teardown(() => sock.close());
  const error = await resolveFamily(sock, 'vhsm').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof NetlinkError, 'a NetlinkError');
  t.match(error, { code: 'ENOENT', errno: 2, origin: 'kernel' });
});

t.test('GenlSocket: the kernel\'s extended ack reaches the error', async (t) => {
  const sock = GenlSocket.open();
  t.teardown(() => sock.close());
  // CTRL_ATTR_FAMILY_ID is a u16: send one byte.
  const bad = [{ type: CTRL_ATTR_FAMILY_ID, nested: false, payload: Uint8Array.of(1) }];
  const error = await sock.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, bad).then(
    () => undefined,
    (e: unknown) => e as NetlinkError,
  );
  t.ok(error instanceof NetlinkError);
  t.ok(error && ['ERANGE', 'EINVAL'].includes(error.code), `refused by policy: ${error?.code}`);
  t.type(error?.extack.message, 'string', `extack message: ${error?.extack.message}`);
  t.equal(error?.extack.offset, 20, 'offset points at the attribute (16 nlmsghdr + 4 genlmsghdr)');
  t.equal(error?.extack.policy?.type, 'u16', 'the policy says u16');
});

t.test('GenlSocket: many requests in flight, each answered with its own reply', async (t) => {
  const sock = GenlSocket.open();
  t.teardown(() => sock.close());
  const all = (await sock.dump(GENL_ID_CTRL, CTRL_CMD_GETFAMILY)).map(decodeFamily);
  t.ok(all.some((f) => f.name === 'nlctrl'), `dump listed ${all.length} families`);
  const names = [...all.map((f) => f.name), ...all.map((f) => f.name)];
  const missing = Array.from({ length: 20 }, (_, i) => `vhsm-missing-${i}`);
  const found = names.map((n) => resolveFamily(sock, n));
  const refused = missing.map((n) => resolveFamily(sock, n).then(() => 'resolved', (e: NetlinkError) => e.code));
  t.equal(sock.inFlight, names.length + missing.length, `${sock.inFlight} requests in flight at once`);
  const results = await Promise.all(found);
  t.same(results.map((f) => [f.name, f.id]), names.map((n) => [n, all.find((f) => f.name === n)!.id]), 'every reply matched its request');
  t.same(await Promise.all(refused), missing.map(() => 'ENOENT'), 'every refusal matched its request');
  t.equal(sock.inFlight, 0);
});

t.test('GenlSocket: close rejects what is pending, then refuses new requests', async (t) => {
  const sock = GenlSocket.open();
  const pending: Array<Promise<unknown>> = [resolveFamily(sock, 'nlctrl'), sock.dump(GENL_ID_CTRL, CTRL_CMD_GETFAMILY)];
  sock.close();
  for (const p of pending) await t.rejects(p, { name: 'NetlinkError', code: 'ECLOSED', origin: 'local' });
  await t.rejects(resolveFamily(sock, 'nlctrl'), { code: 'ECLOSED' }, 'no request after close');
  t.throws(() => sock.sendRaw(new Uint8Array(16)), { code: 'ECLOSED' });
  t.equal(sock.closed, true);
});

t.test('GenlSocket: a receive overrun (ENOBUFS) is reported, counted, and survived', async (t) => {
  const sock = GenlSocket.open({ recvBufferBytes: 1024 });
  t.teardown(() => sock.close());
  const overrun = new Promise<Error>((resolve) => sock.onReceiveError(resolve));
  const unsolicited: NlMessage[] = [];
  sock.onUnsolicited((m) => unsolicited.push(m));
  const request = encodeGenlmsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: 1, flags: NLM_F_REQUEST, seq: 0xfffffff0 }, [
    attr.string(CTRL_ATTR_FAMILY_NAME, 'nlctrl'),
  ]);
  // Replies queue up while this loop holds the event loop.
  for (let i = 0; i < 200; i++) sock.sendRaw(request);
  t.match(await overrun, { code: 'ENOBUFS', errno: -105 }, 'ENOBUFS delivered to the receive-error hook');
  // The kernel drops everything for a congested socket until its queue is
  // read empty: let the addon drain it first.
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(sock.counters.overruns >= 1, `overruns counted: ${sock.counters.overruns}`);
  t.ok(unsolicited.length > 0 && unsolicited.length < 200, `${unsolicited.length} untracked replies got through, the rest were dropped`);
  const family = await resolveFamily(sock, 'nlctrl');
  t.equal(family.id, 16, 'the socket still works');
});

t.test('GenlSocket: requestRaw tracks the seq inside arbitrary bytes', async (t) => {
  const sock = GenlSocket.open();
  t.teardown(() => sock.close());
  const seq = sock.nextSeq();
  const msg = encodeGenlmsg({ family: 0x7fff, cmd: 1, version: 1, flags: NLM_F_REQUEST | NLM_F_ACK, seq }, encodeAttrs([]));
  await t.rejects(sock.requestRaw(msg), { code: 'ENOENT', origin: 'kernel' }, 'an unknown family id: ENOENT');
  await t.rejects(sock.requestRaw(new Uint8Array(8)), { name: 'NetlinkFormatError' }, 'too short to carry a seq');
});

/** Runs a node script; resolves with its exit code, or 'alive' if still running after `ms`. */
function runScript(source: string, ms: number): Promise<{ status: number | 'alive'; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ status: 'alive', stderr });
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stderr });
    });
  });
}

t.test('event loop: an idle unref-ed socket lets Node exit; a ref-ed one keeps it alive', async (t) => {
  const genl = moduleUrl('../../netlink/genl-socket.js');
  const ctrl = moduleUrl('../../netlink/ctrl.js');
  const idle = await runScript(
    `import { GenlSocket } from '${genl}'; import { resolveFamily } from '${ctrl}';
     const s = GenlSocket.open({ keepAlive: 'while-pending' });
     const f = await resolveFamily(s, 'nlctrl'); if (f.id !== 16) process.exit(3);`,
    10_000,
  );
  t.equal(idle.status, 0, `exits on its own with the socket open and idle ${idle.stderr}`);
  const kept = await runScript(`import { GenlSocket } from '${genl}'; GenlSocket.open({ keepAlive: 'always' });`, 1500);
  t.equal(kept.status, 'alive', 'a ref-ed socket keeps Node running');
  const closed = await runScript(`import { GenlSocket } from '${genl}'; GenlSocket.open().close();`, 10_000);
  t.equal(closed.status, 0, 'a closed socket does not hold the loop');
});

t.test('event loop: an exception thrown by the datagram callback is an uncaught exception', async (t) => {
  const addon = moduleUrl('../../netlink/addon.js');
  const r = await runScript(
    `import { createNativeSocket } from '${addon}';
     const s = createNativeSocket(16); s.bind();
     s.start(() => { throw new Error('boom from callback'); });
     const b = new Uint8Array(32); const v = new DataView(b.buffer);
     v.setUint32(0, 32, true); v.setUint16(4, 16, true); v.setUint16(6, 5, true); b[16] = 3; b[17] = 1;
     v.setUint16(20, 11, true); v.setUint16(22, 2, true); b.set(new TextEncoder().encode('nlctrl'), 24);
     s.send(b);`,
    10_000,
  );
  t.equal(r.status, 1, 'the process fails like any uncaught exception');
  t.match(r.stderr, /boom from callback/);
});

t.test('addon path resolves from the compiled test location', async (t) => {
  t.ok(fileURLToPath(import.meta.url).includes('/dist/test/host/'), 'running from dist');
  t.type(loadNetlinkAddon().NetlinkSocket, 'function');
});
