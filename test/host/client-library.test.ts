/**
 * The client library itself: pipelining many requests on one transport,
 * per-call timeouts, close(), transport errors passed through as codes, and
 * replies that do not fit the protocol.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { VhsmClient, VhsmError } from '../../client/index.js';
import { PROTOCOL_VERSION, decodeRequest, encodeResponse, uint64ToSafeNumber, type pb } from '../../proto/index.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { ALICE, identity, startFixture } from './helpers/fixture.js';
import { expectCode } from './helpers/expect.js';

t.test('pipelining: 500 requests in flight on one transport, each matched to its reply', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const inputs = Array.from({ length: 500 }, (_, i) => Buffer.from(`message ${i}`));
  const digests = await Promise.all(inputs.map((input) => session.digest(input)));
  const wrong = digests.filter((digest, i) => !Buffer.from(digest).equals(createHash('sha256').update(inputs[i]!).digest()));
  t.equal(wrong.length, 0, 'every reply belongs to its request');
});

/** A fake server that answers each request with `answer(request)`, or not at all. */
function fakeServer(answer: (request: pb.Request) => pb.Response.$Properties | undefined): MemoryTransportHub {
  const hub = new MemoryTransportHub();
  const server = hub.createServerTransport();
  server.listen((stamped) => {
    const response = answer(decodeRequest(stamped.payload));
    if (response) void server.reply(stamped.requestId, encodeResponse(response));
  });
  return hub;
}

t.test('timeouts, close, and transport errors as codes', async (t) => {
  const silent = fakeServer(() => undefined);
  const client = await VhsmClient.connect(silent.connect(identity()), { timeoutMs: 100 });
  const started = Date.now();
  await expectCode(t, client.login('alice', 'pw'), 'ETIMEDOUT', 'no reply within the default timeout');
  t.ok(Date.now() - started < 1_000, 'timed out promptly');
  await expectCode(t, client.login('alice', 'pw', { timeoutMs: 30 }), 'ETIMEDOUT', 'per-call timeout');

  const pending = client.login('alice', 'pw', { timeoutMs: 5_000 });
  await client.close();
  await expectCode(t, pending, 'ECLOSED', 'close fails in-flight calls');
  await expectCode(t, client.login('alice', 'pw'), 'ECLOSED', 'calls after close');

  const nobody = new MemoryTransportHub();
  const lonely = await VhsmClient.connect(nobody.connect(identity()));
  await expectCode(t, lonely.login('alice', 'pw'), 'ECONNREFUSED', 'no server registered');
  const error = await lonely.login('alice', 'pw').catch((e: unknown) => e);
  t.ok(error instanceof VhsmError && error.cause !== undefined, 'the transport error is kept as the cause');

  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const key = await session.generateKey({ type: 'ed25519' });
  // Sign takes one message (digest and MAC stream larger inputs instead).
  await expectCode(t, session.sign(key.keyId, new Uint8Array(40 * 1024)), 'EMSGSIZE', 'payload over 32 KiB');
});

t.test('replies that do not fit the protocol are PROTOCOL_ERROR', async (t) => {
  const cases: [string, (request: pb.Request) => pb.Response.$Properties][] = [
    ['wrong id', (r) => ({ version: PROTOCOL_VERSION, id: (uint64ToSafeNumber(r.id) ?? 0) + 1, login: { session: new Uint8Array(16) } })],
    ['wrong version', (r) => ({ version: 9, id: r.id, login: { session: new Uint8Array(16) } })],
    ['wrong result kind', (r) => ({ version: PROTOCOL_VERSION, id: r.id, digest: { digest: new Uint8Array(32) } })],
    ['no result', (r) => ({ version: PROTOCOL_VERSION, id: r.id })],
  ];
  for (const [label, answer] of cases) {
    const client = await VhsmClient.connect(fakeServer(answer).connect(identity()));
    await expectCode(t, client.login('alice', 'pw'), 'PROTOCOL_ERROR', label);
  }
  const garbage = new MemoryTransportHub();
  const server = garbage.createServerTransport();
  server.listen((stamped) => void server.reply(stamped.requestId, Uint8Array.of(0xff, 0xff)));
  await expectCode(t, (await VhsmClient.connect(garbage.connect(identity()))).login('a', 'b'), 'PROTOCOL_ERROR', 'undecodable reply');

  const unknownCode = fakeServer((r) => ({ version: PROTOCOL_VERSION, id: r.id, error: { code: 999 as never, message: 'new' } }));
  await expectCode(t, (await VhsmClient.connect(unknownCode.connect(identity()))).login('a', 'b'), 'UNKNOWN_ERROR', 'an error code from a newer server');
  const idZero = fakeServer(() => ({ version: PROTOCOL_VERSION, id: 0, error: { code: 1, message: 'unreadable' } }));
  await expectCode(t, (await VhsmClient.connect(idZero.connect(identity()))).login('a', 'b'), 'BAD_REQUEST', 'an error with id 0 is accepted');
});

t.test('close logs out open sessions; the password is not kept', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const client = await fixture.client();
  const password = new TextEncoder().encode(ALICE.password);
  const s1 = await client.login(ALICE.name, password);
  t.same(password, new TextEncoder().encode(ALICE.password), 'a caller-owned password buffer is left alone');
  const s2 = await client.login(ALICE.name, ALICE.password);
  t.equal(fixture.server.stats.sessions, 2);
  await client.close();
  t.equal(fixture.server.stats.sessions, 0, 'both sessions ended on the server');
  t.notOk(s1.active || s2.active, 'and locally');
});
