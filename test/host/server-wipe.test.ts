/**
 * Secrets in replies do not outlive the send: the server zeroes the encoded
 * reply once the transport has its copy, and the netlink transport zeroes
 * its frame once sendmsg returns. Checked by holding on to the very buffers
 * the server and the transport passed on.
 */
import t from 'tap';
import type { NativeNetlinkSocket } from '../../netlink/addon.js';
import { GenlSocket } from '../../netlink/genl-socket.js';
import { decodeResponse } from '../../proto/index.js';
import { ALICE, serveWrapped } from './helpers/fixture.js';

const isZero = (bytes: Uint8Array): boolean => bytes.every((b) => b === 0);

t.test('the server zeroes each encoded reply after sending it', async (t) => {
  const sent: { payload: Uint8Array; decodedCopy: ReturnType<typeof decodeResponse>; done: Promise<void> }[] = [];
  const { client } = await serveWrapped(t, (inner) => ({
    listen: (handler) => inner.listen(handler),
    reply(requestId, payload) {
      const done = inner.reply(requestId, payload);
      sent.push({ payload, decodedCopy: decodeResponse(Uint8Array.from(payload)), done });
      return done;
    },
    close: () => inner.close(),
  }));

  const session = await client.login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'aes-256', extractable: true });
  const secret = new TextEncoder().encode('attack at dawn, bring the cake');
  const sealed = await session.encrypt(key.keyId, secret);
  const plaintext = await session.decrypt(key.keyId, sealed);
  t.same(plaintext, secret, 'the client got the plaintext');
  const exported = await session.exportKey(key.keyId, 'raw');
  t.equal(exported.length, 32, 'and the exported key');
  await new Promise((resolve) => setImmediate(resolve));

  const find = (pick: (r: ReturnType<typeof decodeResponse>) => unknown) => sent.find((s) => pick(s.decodedCopy) != null)!;
  for (const [what, entry] of [
    ['login (session id)', find((r) => r.login)],
    ['decrypt (plaintext)', find((r) => r.decrypt)],
    ['exportKey (key material)', find((r) => r.exportKey)],
  ] as const) {
    await entry.done;
    t.ok(entry.payload.length > 0 && isZero(entry.payload), `${what}: the encoded reply is all zeros after sending`);
  }
  t.same(find((r) => r.decrypt).decodedCopy.decrypt!.plaintext, secret, 'while the copy taken during the send held the plaintext');
});

t.test('GenlSocket zeroes a frame sent with wipe once sendmsg returns', async (t) => {
  const frames: Uint8Array[] = [];
  const fake: NativeNetlinkSocket = {
    bind: () => 77,
    setRecvBuffer: (bytes) => bytes * 2,
    setExtAck() {},
    setStrictCheck() {},
    setCapAck() {},
    send(bytes) {
      frames.push(bytes);
      if (isZero(bytes)) throw new Error('the frame was zeroed before sendmsg');
      return bytes.length;
    },
    start() {},
    stop() {},
    close() {},
    ref() {},
    unref() {},
    closed: false,
  };
  const socket = GenlSocket.open({ factory: () => fake });
  const payload = new Uint8Array(48).fill(0xa5);
  await socket.request(0x1b, 5, payload, { expect: 'nothing', wipe: true });
  t.ok(isZero(frames[0]!), 'wipe: the frame is zeros after the send');
  await socket.request(0x1b, 5, payload, { expect: 'nothing' });
  t.notOk(isZero(frames[1]!), 'without wipe the frame is left alone');
  socket.close();
});
