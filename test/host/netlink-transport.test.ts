/**
 * The vhsm netlink transports over a fake socket that plays the kernel:
 * every message they send is checked byte-level (command, flags,
 * attributes), and every message the module would send (RESPONSE, DELIVER,
 * NLMSG_ERROR with extack, dumps) is built here as the kernel builds it.
 */
import t from 'tap';
import { fstatSync, statSync } from 'node:fs';
import type { DatagramCallback, NativeNetlinkSocket, NativeSocketError } from '../../netlink/addon.js';
import { AttrSet, attr, encodeAttrs, type NlAttr } from '../../netlink/attributes.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_VERSION,
  CTRL_CMD_GETFAMILY,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
} from '../../netlink/constants.js';
import { decodeGenlmsg, encodeGenlmsg, type GenlMessage } from '../../netlink/genl.js';
import { GenlSocket } from '../../netlink/genl-socket.js';
import { decodeNlmsgs, encodeNlmsg, type NlMessage } from '../../netlink/message.js';
import * as V from '../../netlink/vhsm-uapi.js';
import { VhsmAdmin, STAT_NAMES } from '../../transport/netlink-admin.js';
import { openNetlinkClient } from '../../transport/netlink-client.js';
import { decodeCancel, registerNetlinkServer } from '../../transport/netlink-server.js';
import { TransportError } from '../../transport/types.js';

const FAMILY = 0x1b;
const PORTID = 4242;

type Kernel = (request: GenlMessage, socket: FakeSocket) => void;

/** A NativeNetlinkSocket whose peer is a function playing the kernel. */
class FakeSocket implements NativeNetlinkSocket {
  readonly sent: GenlMessage[] = [];
  readonly options: Record<string, boolean | number> = {};
  referenced = true;
  closed = false;
  private callback: DatagramCallback | undefined;

  constructor(private readonly kernel: Kernel) {}

  bind(): number {
    return PORTID;
  }
  setRecvBuffer(bytes: number): number {
    this.options.recvBuffer = bytes;
    return bytes * 2;
  }
  setExtAck(on: boolean): void {
    this.options.extAck = on;
  }
  setStrictCheck(on: boolean): void {
    this.options.strictCheck = on;
  }
  setCapAck(on: boolean): void {
    this.options.capAck = on;
  }
  setNoEnobufs(on: boolean): void {
    this.options.noEnobufs = on;
  }
  send(bytes: Uint8Array): number {
    if (this.closed) throw Object.assign(new Error('sendto EBADF'), { code: 'EBADF', errno: -9, syscall: 'sendto' });
    // sendmsg copies: the caller may zero its buffer afterwards (replies are wiped).
    for (const m of decodeNlmsgs(Uint8Array.from(bytes))) {
      const g = decodeGenlmsg(m);
      this.sent.push(g);
      this.kernel(g, this);
    }
    return bytes.length;
  }
  // Like the real uv_poll handle: a started, referenced socket keeps Node alive.
  private loopHold: NodeJS.Timeout | undefined;
  private holdLoop(): void {
    clearInterval(this.loopHold);
    this.loopHold = this.callback && this.referenced ? setInterval(() => {}, 1 << 30) : undefined;
  }
  start(callback: DatagramCallback): void {
    this.callback = callback;
    this.holdLoop();
  }
  stop(): void {
    this.callback = undefined;
    this.holdLoop();
  }
  close(): void {
    this.closed = true;
    this.stop();
  }
  ref(): void {
    this.referenced = true;
    this.holdLoop();
  }
  unref(): void {
    this.referenced = false;
    this.holdLoop();
  }

  /** Queues a datagram; like the real socket, it is read on a later loop turn. */
  deliver(datagram: Uint8Array, sender = 0): void {
    setImmediate(() => this.callback?.(null, datagram, sender));
  }
  failReceive(code: string, errno: number): void {
    const error = Object.assign(new Error(`recvmsg ${code}`), { code, errno: -errno, syscall: 'recvmsg' }) as NativeSocketError;
    setImmediate(() => this.callback?.(error));
  }
  /** Requests the transport sent with command `cmd`. */
  sentCmd(cmd: number): GenlMessage[] {
    return this.sent.filter((m) => m.type === FAMILY && m.cmd === cmd);
  }
}

/** A genl message from the kernel. */
function genl(cmd: number, seq: number, attrs: readonly NlAttr[], flags = 0, family = FAMILY): Uint8Array {
  return encodeGenlmsg({ family, cmd, version: 1, flags, seq, portid: PORTID }, attrs);
}

/** NLMSG_ERROR for `request` as netlink_ack() builds it with NETLINK_CAP_ACK and NETLINK_EXT_ACK on. */
function ack(request: NlMessage, errno = 0, extackMessage?: string): Uint8Array {
  const header = encodeNlmsg(request, request.payload).subarray(0, 16);
  const tlvs = extackMessage === undefined ? new Uint8Array() : encodeAttrs([attr.string(NLMSGERR_ATTR_MSG, extackMessage)]);
  const body = new Uint8Array(20 + tlvs.length);
  new DataView(body.buffer).setInt32(0, -errno, true);
  body.set(header, 4);
  body.set(tlvs, 20);
  const flags = NLM_F_CAPPED | (tlvs.length ? NLM_F_ACK_TLVS : 0);
  return encodeNlmsg({ type: NLMSG_ERROR, flags, seq: request.seq, portid: PORTID }, body);
}

interface FakeKernelOptions {
  readonly familyErrno?: number;
  readonly familyVersion?: number;
}

/** nlctrl knows "vhsm"; everything else goes to `vhsm`. */
function fakeKernel(vhsm: Kernel, options: FakeKernelOptions = {}): FakeSocket {
  return new FakeSocket((req, sock) => {
    if (req.type === GENL_ID_CTRL && req.cmd === CTRL_CMD_GETFAMILY) {
      if (req.attrs.string(CTRL_ATTR_FAMILY_NAME) !== 'vhsm' || options.familyErrno) {
        sock.deliver(ack(req, options.familyErrno ?? 2));
        return;
      }
      sock.deliver(genl(CTRL_CMD_NEWFAMILY, req.seq, [
        attr.u16(CTRL_ATTR_FAMILY_ID, FAMILY),
        attr.string(CTRL_ATTR_FAMILY_NAME, 'vhsm'),
        attr.u32(CTRL_ATTR_VERSION, options.familyVersion ?? V.VHSM_GENL_VERSION),
      ], 0, GENL_ID_CTRL));
      return;
    }
    vhsm(req, sock);
  });
}

function factoryFor(sock: FakeSocket): () => FakeSocket {
  return () => sock;
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (error) {
    return error as TransportError;
  }
  throw new Error('expected a rejection');
}

const response = (seq: number, status: number, payload?: Uint8Array): Uint8Array =>
  genl(V.VHSM_CMD_RESPONSE, seq, [
    attr.u32(V.VHSM_A_STATUS, status),
    ...(payload ? [attr.binary(V.VHSM_A_PAYLOAD, payload)] : []),
  ]);

// ---------------------------------------------------------------- client


/**
 * Waits until the server has read what the fake kernel queued (`done`), at
 * most 2 s: a fixed few milliseconds was too short on a loaded machine.
 */
async function settled(done: () => boolean): Promise<void> {
  for (const end = Date.now() + 2000; !done() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 2));
}

t.test('client: REQUEST out without ACK, RESPONSEs matched by seq in any order', async (t) => {
  const sock = fakeKernel(() => {});
  const client = await openNetlinkClient({ factory: factoryFor(sock) });
  t.teardown(() => client.close());
  t.equal(sock.sent[0]?.attrs.string(CTRL_ATTR_FAMILY_NAME), 'vhsm', 'resolved the family through nlctrl');
  t.match(sock.options, { extAck: true, strictCheck: true, capAck: true }, 'extended ack, strict checking, capped acks');
  t.equal(client.familyId, FAMILY);
  t.equal(sock.referenced, false, 'idle client does not keep Node alive');

  const payloads = [Uint8Array.of(1), Uint8Array.of(2, 2), Uint8Array.of(3, 3, 3)];
  const promises = payloads.map((p) => client.request(p));
  const requests = sock.sentCmd(V.VHSM_CMD_REQUEST);
  t.equal(requests.length, 3, 'three REQUESTs in flight');
  t.equal(client.inFlight, 3);
  t.equal(sock.referenced, true, 'requests in flight keep Node alive');
  requests.forEach((r, i) => {
    t.equal(r.flags, NLM_F_REQUEST, 'NLM_F_REQUEST only: no ACK');
    t.equal(r.version, V.VHSM_GENL_VERSION);
    t.same(r.attrs.list.map((a) => a.type), [V.VHSM_A_PAYLOAD], 'only the payload: the kernel stamps the rest');
    t.same(r.attrs.binary(V.VHSM_A_PAYLOAD), payloads[i]);
  });
  t.equal(new Set(requests.map((r) => r.seq)).size, 3, 'distinct seqs');
  // The server answers out of order; each RESPONSE carries its client's seq.
  for (const [i, r] of [...requests.entries()].reverse()) sock.deliver(response(r.seq, 0, Uint8Array.of(0xa0 + i)));
  t.same(await Promise.all(promises), [Uint8Array.of(0xa0), Uint8Array.of(0xa1), Uint8Array.of(0xa2)], 'each promise got its own reply');
  t.equal(client.inFlight, 0);
  t.equal(sock.referenced, false, 'idle again');
});

t.test('client: a RESPONSE with STATUS is a TransportError with that errno', async (t) => {
  const sock = fakeKernel(() => {});
  const client = await openNetlinkClient({ factory: factoryFor(sock) });
  t.teardown(() => client.close());
  const cases: Array<[number, string, RegExp]> = [
    [104, 'ECONNRESET', /^ECONNRESET: the VHSM server went away/],
    [110, 'ETIMEDOUT', /^ETIMEDOUT: the VHSM server did not answer before the kernel deadline/],
    [1, 'EPERM', /^EPERM: /],
    [17, 'EIO', /^EEXIST: /],
  ];
  for (const [status, code, message] of cases) {
    const p = client.request(Uint8Array.of(7));
    const [req] = sock.sentCmd(V.VHSM_CMD_REQUEST).slice(-1);
    sock.deliver(response(req!.seq, status));
    const e = await rejection(p);
    t.ok(e instanceof TransportError, `STATUS ${status} rejects with a TransportError`);
    t.match(e, { code, errno: status, message });
  }
  const empty = client.request(Uint8Array.of(1));
  sock.deliver(response(sock.sentCmd(V.VHSM_CMD_REQUEST).at(-1)!.seq, 0));
  t.same(await empty, new Uint8Array(0), 'STATUS 0 without PAYLOAD: an empty reply');
  const bad = client.request(Uint8Array.of(1));
  sock.deliver(genl(V.VHSM_CMD_RESPONSE, sock.sentCmd(V.VHSM_CMD_REQUEST).at(-1)!.seq, [attr.binary(V.VHSM_A_PAYLOAD, Uint8Array.of(1))]));
  t.match(await rejection(bad), { code: 'EIO', message: /RESPONSE without STATUS/ }, 'a RESPONSE without STATUS is EIO');
});

t.test('client: NLMSG_ERROR refusals carry the errno name and the extack message', async (t) => {
  let next: [number, string | undefined] = [13, 'sender netns is not bound to a CTID'];
  const sock = fakeKernel((req, s) => s.deliver(ack(req, next[0], next[1])));
  const client = await openNetlinkClient({ factory: factoryFor(sock) });
  t.teardown(() => client.close());
  t.match(await rejection(client.request(Uint8Array.of(1))), { name: 'TransportError', code: 'EACCES', errno: 13, message: 'EACCES: sender netns is not bound to a CTID' });
  next = [111, undefined];
  t.match(await rejection(client.request(Uint8Array.of(1))), { code: 'ECONNREFUSED', errno: 111, message: 'ECONNREFUSED: no VHSM server is registered' });
  next = [90, 'payload too large'];
  t.match(await rejection(client.request(Uint8Array.of(1))), { code: 'EMSGSIZE', errno: 90 });
  next = [105, undefined];
  t.match(await rejection(client.request(Uint8Array.of(1))), { code: 'ENOBUFS', message: /quota of pending requests/ });
  next = [11, undefined];
  t.match(await rejection(client.request(Uint8Array.of(1))), { code: 'EAGAIN', errno: 11 });
  t.equal(client.inFlight, 0);
});

t.test('client: forged datagrams from user space are ignored', async (t) => {
  const sock = fakeKernel(() => {});
  const client = await openNetlinkClient({ factory: factoryFor(sock) });
  t.teardown(() => client.close());
  const p = client.request(Uint8Array.of(1));
  const seq = sock.sentCmd(V.VHSM_CMD_REQUEST)[0]!.seq;
  sock.deliver(response(seq, 0, Uint8Array.of(0x66)), 31337); // a peer with CAP_NET_ADMIN
  sock.deliver(response(seq, 0, Uint8Array.of(0x42)));
  t.same(await p, Uint8Array.of(0x42), 'only the kernel\'s RESPONSE counts');
});

t.test('client: timeouts, late responses, oversize payloads, close', async (t) => {
  const sock = fakeKernel(() => {});
  const client = await openNetlinkClient({ factory: factoryFor(sock), timeoutMs: 10_000 });
  const started = Date.now();
  t.match(await rejection(client.request(Uint8Array.of(1), { timeoutMs: 30 })), { code: 'ETIMEDOUT', errno: 110 }, 'client-side deadline');
  t.ok(Date.now() - started >= 25, 'not before the deadline');
  sock.deliver(response(sock.sentCmd(V.VHSM_CMD_REQUEST)[0]!.seq, 0, Uint8Array.of(1)));
  await new Promise((r) => setImmediate(r));
  t.pass('a late RESPONSE is dropped quietly');

  const sentBefore = sock.sent.length;
  t.match(await rejection(client.request(new Uint8Array(V.VHSM_PAYLOAD_MAX + 1))), { code: 'EMSGSIZE' }, 'over VHSM_PAYLOAD_MAX: refused locally');
  t.equal(sock.sent.length, sentBefore, 'nothing sent');
  const max = client.request(new Uint8Array(V.VHSM_PAYLOAD_MAX));
  t.equal(sock.sent.length, sentBefore + 1, 'exactly VHSM_PAYLOAD_MAX is sent');

  const another = client.request(Uint8Array.of(2));
  await client.close();
  t.match(await rejection(max), { code: 'ECLOSED' }, 'in flight at close: ECLOSED');
  t.match(await rejection(another), { code: 'ECLOSED' });
  t.match(await rejection(client.request(Uint8Array.of(3))), { code: 'ECLOSED' }, 'after close: ECLOSED');
  t.equal(sock.closed, true, 'socket released');
});

t.test('client: a missing module is ENOENT "vhsm_transport module not loaded"', async (t) => {
  const sock = fakeKernel(() => {}, { familyErrno: 2 });
  const e = await rejection(openNetlinkClient({ factory: factoryFor(sock) }));
  t.ok(e instanceof TransportError);
  t.match(e, { code: 'ENOENT', message: 'vhsm_transport module not loaded', errno: 2 });
  t.equal(sock.closed, true, 'socket closed');
  const old = fakeKernel(() => {}, { familyVersion: 1 });
  t.match(await rejection(openNetlinkClient({ factory: factoryFor(old) })), { code: 'EIO', message: /speaks version 1, this build speaks 2/ }, 'ABI version mismatch refused');
});

// ---------------------------------------------------------------- server

/** DELIVER as the module builds it: u64s via nla_put_u64_64bit (a PAD may precede them). */
interface Stamp {
  ctid: number;
  cookie: bigint;
  pid: number;
  start: bigint;
  uid: number;
  gid: number;
}

function deliver(seq: number, requestId: bigint, sender: Stamp, payload: Uint8Array, pad = false): Uint8Array {
  return genl(V.VHSM_CMD_DELIVER, seq, [
    ...(pad ? [attr.flag(V.VHSM_A_PAD)] : []),
    attr.u64(V.VHSM_A_REQ_ID, requestId),
    attr.u32(V.VHSM_A_CTID, sender.ctid),
    attr.u64(V.VHSM_A_NETNS_COOKIE, sender.cookie),
    attr.u32(V.VHSM_A_PID, sender.pid),
    attr.u64(V.VHSM_A_PROC_START, sender.start),
    attr.u32(V.VHSM_A_UID, sender.uid),
    attr.u32(V.VHSM_A_GID, sender.gid),
    attr.binary(V.VHSM_A_PAYLOAD, payload),
  ]);
}

t.test('server: register, DELIVER -> StampedRequest, REPLY', async (t) => {
  const replyErrors = new Map<bigint, [number, string]>();
  const sock = fakeKernel((req, s) => {
    if (req.cmd === V.VHSM_CMD_SERVER_REGISTER || req.cmd === V.VHSM_CMD_SERVER_UNREGISTER) s.deliver(ack(req));
    if (req.cmd === V.VHSM_CMD_REPLY) {
      const e = replyErrors.get(req.attrs.u64(V.VHSM_A_REQ_ID)!);
      if (e) s.deliver(ack(req, e[0], e[1])); // no ACK asked: only errors answer
    }
  });
  const server = await registerNetlinkServer({ factory: factoryFor(sock) });
  const [register] = sock.sentCmd(V.VHSM_CMD_SERVER_REGISTER);
  t.equal(register?.flags, NLM_F_REQUEST | NLM_F_ACK, 'SERVER_REGISTER asks for an ACK');
  t.equal(register?.attrs.list.length, 0, 'and carries no attributes');
  t.equal(sock.options.recvBuffer, 16 * 1024 * 1024, 'a large receive buffer');
  t.equal(sock.referenced, true, 'a server keeps Node alive');

  // Two DELIVERs before listen(): kept, then handed over in order. The
  // kernel's seq for the first collides with nothing yet; the second reuses
  // a seq the server has in flight, and must still be seen as a DELIVER.
  const alice = { ctid: 101, cookie: 0x1000_0000_0000_0001n, pid: 1, start: 12_345_678_901n, uid: 0, gid: 0 };
  const bob = { ctid: 102, cookie: 0xffff_ffff_ffff_fff0n, pid: 4321, start: 2n ** 64n - 1n, uid: 1000, gid: 1000 };
  sock.deliver(deliver(77, 1n, alice, Uint8Array.of(1, 2, 3), true));
  await new Promise((r) => setImmediate(r));
  const got: unknown[] = [];
  const first = new Promise<void>((resolve) => server.listen((r) => (got.push(r), got.length === 2 && resolve())));
  const pendingReply = server.reply(1n, Uint8Array.of(0xee));
  const replySeq = sock.sentCmd(V.VHSM_CMD_REPLY)[0]!.seq;
  sock.deliver(deliver(replySeq, 2n ** 64n - 1n, bob, new Uint8Array(0)));
  await first;
  t.same(got, [
    { requestId: 1n, sender: { ctid: 101, netnsCookie: 0x1000_0000_0000_0001n, pid: 1, procStart: 12_345_678_901n, uid: 0, gid: 0 }, payload: Uint8Array.of(1, 2, 3) },
    { requestId: 2n ** 64n - 1n, sender: { ctid: 102, netnsCookie: 0xffff_ffff_ffff_fff0n, pid: 4321, procStart: 2n ** 64n - 1n, uid: 1000, gid: 1000 }, payload: new Uint8Array(0) },
  ], 'stamped requests decoded exactly, in arrival order');
  await pendingReply;
  t.pass('a REPLY the kernel did not refuse resolves without an ACK');
  const [reply] = sock.sentCmd(V.VHSM_CMD_REPLY);
  t.equal(reply?.flags, NLM_F_REQUEST, 'REPLY without NLM_F_ACK by default');
  t.equal(reply?.attrs.u64(V.VHSM_A_REQ_ID), 1n);
  t.same(reply?.attrs.binary(V.VHSM_A_PAYLOAD), Uint8Array.of(0xee));
  t.throws(() => server.listen(() => {}), /already/, 'one handler');

  replyErrors.set(5n, [2, 'unknown or expired request id']);
  t.match(await rejection(server.reply(5n, Uint8Array.of(1))), { code: 'ENOENT', errno: 2, message: 'ENOENT: unknown or expired request id' }, 'a refused REPLY rejects');
  replyErrors.set(6n, [1, 'not the registered server']);
  t.match(await rejection(server.reply(6n, Uint8Array.of(1))), { code: 'EPERM' });
  t.match(await rejection(server.reply(7n, new Uint8Array(V.VHSM_PAYLOAD_MAX + 1))), { code: 'EMSGSIZE' });

  await server.close();
  await server.close();
  t.equal(sock.sentCmd(V.VHSM_CMD_SERVER_UNREGISTER).length, 1, 'UNREGISTER sent once');
  t.equal(sock.sentCmd(V.VHSM_CMD_SERVER_UNREGISTER)[0]?.flags, NLM_F_REQUEST | NLM_F_ACK);
  t.equal(sock.closed, true);
  t.match(await rejection(server.reply(8n, Uint8Array.of(1))), { code: 'ECLOSED' });
});

t.test('server: overruns and malformed DELIVERs are counted, delivery goes on', async (t) => {
  const sock = fakeKernel((req, s) => {
    if (req.cmd !== V.VHSM_CMD_REPLY) s.deliver(ack(req));
    else s.deliver(ack(req)); // replyAck: the kernel ACKs
  });
  const server = await registerNetlinkServer({ factory: factoryFor(sock), replyAck: true, recvBufferBytes: 1 << 20 });
  t.teardown(() => server.close());
  t.equal(sock.options.recvBuffer, 1 << 20);
  const seen: bigint[] = [];
  server.listen((r) => seen.push(r.requestId));
  const who = { ctid: 1, cookie: 1n, pid: 1, start: 1n, uid: 0, gid: 0 };
  sock.failReceive('ENOBUFS', 105);
  sock.deliver(genl(V.VHSM_CMD_DELIVER, 0, [attr.u64(V.VHSM_A_REQ_ID, 3n), attr.binary(V.VHSM_A_PAYLOAD, Uint8Array.of(1))])); // no stamp
  sock.deliver(Uint8Array.of(1, 2, 3)); // not netlink at all
  sock.deliver(deliver(0, 4n, who, Uint8Array.of(9)));
  await settled(() => seen.length > 0);
  t.equal(server.overruns, 1, 'ENOBUFS counted');
  t.equal(server.malformed, 2, 'the unstamped DELIVER and the garbage datagram counted');
  t.same(seen, [4n], 'the good DELIVER still arrives');
  await server.reply(4n, Uint8Array.of(1));
  t.equal(sock.sentCmd(V.VHSM_CMD_REPLY)[0]?.flags, NLM_F_REQUEST | NLM_F_ACK, 'replyAck: REPLY asks for an ACK');
});

t.test('server: CANCEL names delivered requests whose client went away', async (t) => {
  const sock = fakeKernel((req, s) => s.deliver(ack(req)));
  const server = await registerNetlinkServer({ factory: factoryFor(sock) });
  t.teardown(() => server.close());
  t.equal(sock.options.noEnobufs, true, 'the server socket is NETLINK_NO_ENOBUFS: an overrun latches nothing');
  const who = { ctid: 7, cookie: 70n, pid: 700, start: 7_000n, uid: 0, gid: 0 };
  const requests: bigint[] = [];
  const cancelled: bigint[] = [];
  server.listen((r) => requests.push(r.requestId), (id) => cancelled.push(id));
  sock.deliver(deliver(0, 10n, who, Uint8Array.of(1)));
  sock.deliver(genl(V.VHSM_CMD_CANCEL, 0, [attr.u64(V.VHSM_A_REQ_ID, 10n), attr.u64(V.VHSM_A_REQ_ID, 2n ** 64n - 2n)]));
  sock.deliver(genl(V.VHSM_CMD_CANCEL, 0, [attr.u32(V.VHSM_A_REQ_ID, 5)])); // not a u64
  await settled(() => server.malformed > 0);
  t.same(requests, [10n], 'the request arrived');
  t.same(cancelled, [10n, 2n ** 64n - 2n], 'every id of a CANCEL reaches onCancel, in order');
  t.equal(server.malformed, 1, 'a CANCEL with a malformed id is counted and skipped');
  t.same(decodeCancel(decodeGenlmsg(decodeNlmsgs(genl(V.VHSM_CMD_CANCEL, 0, []))[0]!)), [], 'a CANCEL naming nothing names nothing');
  t.throws(() => decodeCancel(decodeGenlmsg(decodeNlmsgs(deliver(0, 1n, who, Uint8Array.of(1)))[0]!)), /expected CANCEL/);
});

t.test('server: registration refused', async (t) => {
  for (const [errno, code, text] of [[16, 'EBUSY', 'another server is registered'], [13, 'EACCES', 'not the VHSM container'], [1, 'EPERM', undefined]] as const) {
    const sock = fakeKernel((req, s) => s.deliver(ack(req, errno, text)));
    const e = await rejection(registerNetlinkServer({ factory: factoryFor(sock) }));
    t.ok(e instanceof TransportError);
    t.match(e, { code, errno });
    if (text) t.equal(e.message, `${code}: ${text}`, 'extack message kept');
    t.equal(sock.closed, true, 'socket closed');
  }
});

// ---------------------------------------------------------------- admin

t.test('admin: bind by pid or netns path, unbind, refusals', async (t) => {
  let refuse: [number, string] | undefined;
  let fdSeen: { fd: number; ino: number } | undefined;
  const sock = fakeKernel((req, s) => {
    if (req.cmd === V.VHSM_CMD_CT_BIND && req.attrs.has(V.VHSM_A_NETNS_FD)) {
      const fd = req.attrs.u32(V.VHSM_A_NETNS_FD)!;
      fdSeen = { fd, ino: fstatSync(fd).ino }; // the kernel resolves it during the send
    }
    s.deliver(refuse ? ack(req, ...refuse) : ack(req));
  });
  const admin = await VhsmAdmin.open({ factory: factoryFor(sock) });
  t.teardown(() => admin.close());

  await admin.bind(101, { pid: 1234 });
  const [byPid] = sock.sentCmd(V.VHSM_CMD_CT_BIND);
  t.equal(byPid?.flags, NLM_F_REQUEST | NLM_F_ACK);
  t.same(byPid?.attrs.list.map((a) => a.type), [V.VHSM_A_CTID, V.VHSM_A_PID]);
  t.same([byPid?.attrs.u32(V.VHSM_A_CTID), byPid?.attrs.u32(V.VHSM_A_PID)], [101, 1234]);

  await admin.bind(102, { netnsPath: '/proc/self/ns/net' });
  t.equal(fdSeen?.ino, statSync('/proc/self/ns/net').ino, 'NETNS_FD is an open fd of that netns file');
  t.throws(() => fstatSync(fdSeen!.fd), { code: 'EBADF' }, 'and it is closed afterwards');

  const sent = sock.sent.length;
  t.match(await rejection(admin.bind(103, { netnsPath: '/run/netns/does-not-exist' })), { code: 'ENOENT', message: /does-not-exist/ });
  t.match(await rejection(admin.bind(0, { pid: 1 })), { code: 'EINVAL' }, 'CTID 0 is never valid');
  t.match(await rejection(admin.bind(1, { pid: 0 })), { code: 'EINVAL' });
  t.equal(sock.sent.length, sent, 'nothing sent for local refusals');

  await admin.unbind(101);
  const [unbind] = sock.sentCmd(V.VHSM_CMD_CT_UNBIND);
  t.same([unbind?.flags, unbind?.attrs.u32(V.VHSM_A_CTID)], [NLM_F_REQUEST | NLM_F_ACK, 101]);

  refuse = [17, 'CTID 101 is already bound'];
  t.match(await rejection(admin.bind(101, { pid: 1 })), { code: 'EIO', errno: 17, message: 'EEXIST: CTID 101 is already bound' }, 'errnos outside the contract keep their name and number');
  refuse = [1, 'admin ops only from the initial netns'];
  t.match(await rejection(admin.unbind(5)), { code: 'EPERM', message: 'EPERM: admin ops only from the initial netns' });
});

t.test('admin: list (dump) and stats', async (t) => {
  const sock = fakeKernel((req, s) => {
    if (req.cmd === V.VHSM_CMD_CT_GET) {
      const row = (ctid: number, cookie: bigint, ino: number, pidns: number, pending: number, queued: number) =>
        genl(V.VHSM_CMD_CT_GET, req.seq, [
          attr.u32(V.VHSM_A_CTID, ctid),
          attr.u64(V.VHSM_A_NETNS_COOKIE, cookie),
          attr.u32(V.VHSM_A_NETNS_INO, ino),
          attr.u32(V.VHSM_A_PIDNS_INO, pidns),
          attr.u32(V.VHSM_A_PENDING, pending),
          attr.u32(V.VHSM_A_QUEUED_BYTES, queued),
        ], NLM_F_MULTI);
      s.deliver(new Uint8Array([...row(101, 11n, 4026532000, 4026531836, 2, 4352), ...row(412, 2n ** 63n, 4026532001, 4026531836, 0, 0)]));
      s.deliver(encodeNlmsg({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: req.seq, portid: PORTID }, new Uint8Array(4)));
    } else if (req.cmd === V.VHSM_CMD_STATS_GET) {
      const withServer = sock.sentCmd(V.VHSM_CMD_STATS_GET).length === 1;
      const counters = [...STAT_NAMES.keys()].map((type) => attr.u64(type, BigInt(type) * 1000n));
      s.deliver(new Uint8Array([
        ...genl(V.VHSM_CMD_STATS_GET, req.seq, [
          attr.nested(V.VHSM_A_STATS, [...counters, attr.u64(99, 7n)]),
          attr.u32(V.VHSM_A_PENDING, 3),
          ...(withServer ? [attr.nested(V.VHSM_A_SERVER, [attr.u32(V.VHSM_SERVER_A_CTID, 412), attr.u64(V.VHSM_SERVER_A_NETNS_COOKIE, 5n), attr.u32(V.VHSM_SERVER_A_PID, 999), attr.u32(V.VHSM_SERVER_A_PORTID, 777)])] : []),
        ]),
        ...ack(req),
      ]));
    }
  });
  const admin = await VhsmAdmin.open({ factory: factoryFor(sock) });
  t.teardown(() => admin.close());

  t.same(await admin.list(), [
    { ctid: 101, netnsCookie: 11n, netnsIno: 4026532000, pidnsIno: 4026531836, pending: 2, queuedBytes: 4352 },
    { ctid: 412, netnsCookie: 2n ** 63n, netnsIno: 4026532001, pidnsIno: 4026531836, pending: 0, queuedBytes: 0 },
  ]);
  t.equal(sock.sentCmd(V.VHSM_CMD_CT_GET)[0]?.flags, NLM_F_REQUEST | NLM_F_DUMP, 'CT_GET is a dump');

  const stats = await admin.stats();
  t.equal(sock.sentCmd(V.VHSM_CMD_STATS_GET)[0]?.flags, NLM_F_REQUEST | NLM_F_ACK);
  t.same(stats, {
    counters: {
      requests: 2000n, forwarded: 3000n, replies: 4000n, responses: 5000n, unbound: 6000n, no_server: 7000n, too_big: 8000n,
      server_busy: 9000n, quota: 10000n, timeouts: 11000n, server_gone: 12000n, client_gone: 13000n, bad_reply: 14000n,
      undelivered: 15000n, foreign_pid: 16000n, orphaned: 17000n, cancels: 18000n, stat_99: 7n,
    },
    pending: 3,
    server: { ctid: 412, netnsCookie: 5n, pid: 999, portid: 777 },
  }, 'counters keyed by lowercase name, unknown ones kept by number');
  const none = await admin.stats();
  t.notOk('server' in none, 'no server registered: no server key');
  t.equal(STAT_NAMES.size, 17, 'every VHSM_STAT_* counter has a name');
});

// ---------------------------------------------------------------- GenlSocket edges

t.test('GenlSocket: dump errors, interrupted dumps, malformed answers, unsolicited messages', async (t) => {
  const sock = new FakeSocket((req, s) => {
    const doneWith = (errno: number, flags = NLM_F_MULTI) => {
      const body = new Uint8Array(4);
      new DataView(body.buffer).setInt32(0, -errno, true);
      return encodeNlmsg({ type: NLMSG_DONE, flags, seq: req.seq, portid: PORTID }, body);
    };
    if (req.cmd === 1) s.deliver(doneWith(95));
    if (req.cmd === 2) {
      s.deliver(genl(2, req.seq, [], NLM_F_MULTI | NLM_F_DUMP_INTR));
      s.deliver(doneWith(0));
    }
    if (req.cmd === 3) s.deliver(encodeNlmsg({ type: NLMSG_ERROR, flags: 0, seq: req.seq, portid: PORTID }, new Uint8Array(3)));
    if (req.cmd === 4) s.deliver(genl(4, 0xdead, [attr.u32(1, 1)]));
  });
  const g = GenlSocket.open({ factory: () => sock });
  t.teardown(() => g.close());
  await t.rejects(g.dump(FAMILY, 1), { name: 'NetlinkError', code: 'EOPNOTSUPP', errno: 95 }, 'NLMSG_DONE with an error');
  await t.rejects(g.dump(FAMILY, 2), { code: 'EINTR', message: /interrupted/ }, 'NLM_F_DUMP_INTR: retry');
  await t.rejects(g.request(FAMILY, 3), { name: 'NetlinkFormatError', message: /shorter than struct nlmsgerr/ }, 'a malformed answer fails its request');
  const unsolicited = new Promise<NlMessage>((resolve) => g.onUnsolicited(resolve));
  const quiet = g.request(FAMILY, 4, [], { expect: 'nothing' });
  const m = await unsolicited;
  t.same(await quiet, [], "expect 'nothing': resolves after a loop turn with no error");
  t.equal(m.seq, 0xdead, 'a message for no request goes to onUnsolicited');
  t.equal(AttrSet.decode(m.payload.subarray(4)).u32(1), 1);
  t.equal(g.counters.unsolicited, 1);
  t.equal(g.inFlight, 0);
});
