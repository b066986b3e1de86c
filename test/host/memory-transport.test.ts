/**
 * The in-memory transport behaves like the kernel module: stamps, copies,
 * asynchronous delivery, and the same TransportError codes.
 */
import t from 'tap';
import { MemoryTransportHub } from '../../transport/memory.js';
import { TransportError, type StampedRequest } from '../../transport/types.js';
import { identity } from './helpers/fixture.js';

const codeOf = async (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'OK',
    (error: unknown) => (error instanceof TransportError ? error.code : String(error)),
  );

t.test('stamping, copying, asynchronous delivery', async (t) => {
  const hub = new MemoryTransportHub();
  const server = hub.createServerTransport();
  const received: StampedRequest[] = [];
  let synchronous = true;
  server.listen((request) => {
    t.notOk(synchronous, 'delivered asynchronously');
    received.push(request);
    request.payload[0] = 0xee; // the server's copy
    void server.reply(request.requestId, request.payload);
  });
  const stamp = identity({ ctid: 555, pid: 77, uid: 1000, gid: 1000 });
  const client = hub.connect(stamp);
  const payload = Uint8Array.of(1, 2, 3);
  const reply = client.request(payload);
  synchronous = false;
  const answer = await reply;
  t.same(received[0]!.sender, stamp, 'stamped with the client\'s identity');
  t.equal(payload[0], 1, 'the client\'s buffer was copied, not shared');
  t.same([...answer], [0xee, 2, 3], 'the reply arrives');
  answer[1] = 9;
  t.equal(received[0]!.payload[1], 2, 'the reply was copied too');
  const second = hub.connect(stamp);
  await second.request(Uint8Array.of(1));
  t.ok(received[1]!.requestId > received[0]!.requestId, 'request ids increase, never reused');
  await server.close();
});

t.test('error codes', async (t) => {
  const hub = new MemoryTransportHub();
  const client = hub.connect(identity());
  t.equal(await codeOf(client.request(Uint8Array.of(1))), 'ECONNREFUSED', 'no server');
  const server = hub.createServerTransport();
  const held: StampedRequest[] = [];
  server.listen((request) => held.push(request));
  t.throws(() => hub.createServerTransport().listen(() => {}), { code: 'EBUSY' }, 'a second server');
  t.equal(await codeOf(client.request(new Uint8Array(32 * 1024 + 1))), 'EMSGSIZE', 'payload over 32 KiB');
  t.equal(await codeOf(client.request(Uint8Array.of(1), { timeoutMs: 20 })), 'ETIMEDOUT', 'no reply in time');
  t.equal(await codeOf(server.reply(held[0]!.requestId, Uint8Array.of(1))), 'ENOENT', 'late reply to a timed-out request');
  t.equal(hub.pendingCount, 0, 'nothing pending after the timeout');

  const pendingReset = client.request(Uint8Array.of(2));
  await new Promise((resolve) => setImmediate(resolve));
  const other = hub.connect(identity({ pid: 2 }));
  const pendingClosed = other.request(Uint8Array.of(3));
  await new Promise((resolve) => setImmediate(resolve));
  await other.close();
  t.equal(await codeOf(pendingClosed), 'ECLOSED', 'closing a client fails its in-flight requests');
  t.equal(await codeOf(other.request(Uint8Array.of(4))), 'ECLOSED', 'and later ones');
  await server.close();
  t.equal(await codeOf(pendingReset), 'ECONNRESET', 'server gone with the request pending');
  t.equal(await codeOf(client.request(Uint8Array.of(5))), 'ECONNREFUSED', 'after the server closed');
  const next = hub.createServerTransport();
  next.listen((request) => void next.reply(request.requestId, Uint8Array.of(7)));
  t.same([...(await client.request(Uint8Array.of(6)))], [7], 'a new server can register');
});
