/**
 * Hostile bytes: random frames, truncated and non-canonical encodings,
 * unknown fields, wrong versions, oversized fields, and replayed requests.
 * Every one gets a Response with its error (id 0 when the request could not
 * be read at all), the server keeps serving, and nothing in the DB changes.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION, encodeRequest, v1, type pb } from '../../proto/index.js';
import { MemoryTransportHub } from '../../transport/memory.js';
import { TransportError } from '../../transport/types.js';
import { VhsmServer } from '../../server/server.js';
import { ALICE, TEST_ITERATIONS, identitiesAreFree, identity, startFixture } from './helpers/fixture.js';
import { auditRows, call, rawLogin, sendRaw, snapshot } from './helpers/raw.js';

/** Appends a raw field (tag + bytes) to an encoded message. */
function withExtraField(message: Uint8Array, fieldNumber: number, wireType: number, body: Uint8Array): Uint8Array {
  const tag = (fieldNumber << 3) | wireType;
  const tagBytes: number[] = [];
  for (let value = tag; ; value >>>= 7) {
    if (value < 0x80) {
      tagBytes.push(value);
      break;
    }
    tagBytes.push((value & 0x7f) | 0x80);
  }
  return Buffer.concat([message, Buffer.from(tagBytes), body]);
}

t.test('malformed frames: each answered with its error, nothing changes', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const transport = await fixture.connect();
  const session = await rawLogin(transport, ALICE.name, ALICE.password);
  const keyReply = await call(transport, { session, generateKey: { spec: { type: 1, keyId: 'victim' } } });
  t.equal(keyReply.error, undefined, 'a key to attack');
  const before = (await snapshot(fixture.dbPath));
  const auditBefore = (await auditRows(fixture.dbPath)).length;
  const good: pb.Request.$Properties = { version: PROTOCOL_VERSION, id: 77, session, sign: { keyId: 'victim', data: new Uint8Array([1, 2, 3]) } };
  const goodBytes = encodeRequest(good);

  const cases: [string, Uint8Array, string, number | null][] = [
    ['empty frame', new Uint8Array(0), 'UNSUPPORTED_VERSION', 0],
    ['one 0xff byte', Uint8Array.of(0xff), 'BAD_REQUEST', 0],
    ['truncated valid request', goodBytes.subarray(0, goodBytes.length - 3), 'BAD_REQUEST', null],
    ['unknown top-level field', withExtraField(goodBytes, 99, 0, Uint8Array.of(1)), 'BAD_REQUEST', 77],
    ['known field, wrong wire type', withExtraField(encodeRequest({ ...good, version: undefined }), 1, 2, Uint8Array.of(1, 1)), 'BAD_REQUEST', 77],
    ['duplicate version field', withExtraField(goodBytes, 1, 0, Uint8Array.of(1)), 'BAD_REQUEST', 77],
    ['two operations in one request', withExtraField(goodBytes, 34, 2, Uint8Array.of(0)), 'BAD_REQUEST', 77],
    ['non-minimal varint', Buffer.concat([Uint8Array.of(0x08, 0x81, 0x00), encodeRequest({ ...good, version: undefined })]), 'BAD_REQUEST', 77],
    ['version 2', encodeRequest({ ...good, version: 2 }), 'UNSUPPORTED_VERSION', 77],
    ['version 0', encodeRequest({ ...good, version: 0 }), 'UNSUPPORTED_VERSION', 77],
    ['no operation', encodeRequest({ version: PROTOCOL_VERSION, id: 78, session }), 'BAD_REQUEST', 78],
    ['id above 2^53', encodeRequest({ ...good, id: { low: 0, high: 0x400000, unsigned: true } as never }), 'INVALID_ARGUMENT', 0],
    ['15-byte session id', encodeRequest({ ...good, session: session.subarray(0, 15) }), 'INVALID_ARGUMENT', 77],
    ['no session', encodeRequest({ ...good, session: undefined }), 'NOT_AUTHENTICATED', 77],
    [
      'unknown field inside the operation',
      encodeRequest({ version: PROTOCOL_VERSION, id: 79, session, sign: { keyId: 'victim', data: new Uint8Array(1), $unknowns: [Uint8Array.of(0xf8, 0x01, 0x05)] } as never }),
      'BAD_REQUEST',
      79,
    ],
  ];
  for (const [label, payload, code, id] of cases) {
    const reply = await sendRaw(transport, payload);
    t.equal(reply.error, code, `${label} → ${code}`);
    if (id !== null) t.equal(reply.id, id, `${label}: reply id ${id}`);
  }

  let randomErrors = 0;
  for (let i = 0; i < 300; i++) {
    const reply = await sendRaw(transport, randomBytes(1 + Math.floor(Math.random() * 200)));
    if (reply.error !== undefined) randomErrors += 1;
  }
  t.equal(randomErrors, 300, '300 random frames: every one answered with an error');

  // Every strict prefix of a valid request is refused or answered, never a crash.
  for (let cut = 0; cut < goodBytes.length; cut++) {
    const reply = await sendRaw(transport, goodBytes.subarray(0, cut));
    if (reply.error === undefined) t.fail(`prefix of ${cut} bytes was accepted`);
  }
  t.pass('every prefix of a valid request is refused');

  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed in the DB');
  const good2 = await sendRaw(transport, goodBytes);
  t.equal(good2.error, undefined, 'the server still serves the well-formed request');
  t.ok((await auditRows(fixture.dbPath)).length > auditBefore + 300, 'the malformed requests were audited');
  t.ok((await auditRows(fixture.dbPath)).some((row) => row.op === 'invalid' && row.result === 'BAD_REQUEST'), 'as op "invalid"');
});

t.test('oversized fields: refused before any handler, nothing changes', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const transport = await fixture.connect();
  const session = await rawLogin(transport, ALICE.name, ALICE.password);
  await call(transport, { session, generateKey: { spec: { type: 3, keyId: 'mac-key' } } });
  await call(transport, { session, generateKey: { spec: { type: 1, keyId: 'ec-key' } } });
  const before = (await snapshot(fixture.dbPath));
  const cases: [string, pb.Request.$Properties, string][] = [
    ['65-character username', { login: { username: 'a'.repeat(65), password: Buffer.from('x') } }, 'INVALID_ARGUMENT'],
    ['username with a slash', { login: { username: 'a/b', password: Buffer.from('x') } }, 'INVALID_ARGUMENT'],
    ['1025-byte password', { login: { username: ALICE.name, password: randomBytes(1025) } }, 'INVALID_ARGUMENT'],
    ['empty password', { login: { username: ALICE.name, password: new Uint8Array(0) } }, 'INVALID_ARGUMENT'],
    ['login carrying a session', { session, login: { username: ALICE.name, password: Buffer.from(ALICE.password) } }, 'INVALID_ARGUMENT'],
    ['65-character key id', { session, generateKey: { spec: { type: 3, keyId: 'k'.repeat(65) } } }, 'INVALID_ARGUMENT'],
    ['key id with a space', { session, keyInfo: { keyId: 'a b' } }, 'INVALID_ARGUMENT'],
    ['empty key id', { session, sign: { keyId: '', data: new Uint8Array(1) } }, 'INVALID_ARGUMENT'],
    ['129-byte label', { session, generateKey: { spec: { type: 3, label: 'l'.repeat(129) } } }, 'INVALID_ARGUMENT'],
    ['label with a newline', { session, generateKey: { spec: { type: 3, label: 'a\nb' } } }, 'INVALID_ARGUMENT'],
    ['unknown key type', { session, generateKey: { spec: { type: 99 as never } } }, 'INVALID_ARGUMENT'],
    ['missing key type', { session, generateKey: { spec: {} } }, 'INVALID_ARGUMENT'],
    ['missing spec', { session, generateKey: {} }, 'INVALID_ARGUMENT'],
    ['unknown usage', { session, generateKey: { spec: { type: 3, usages: [42 as never] } } }, 'INVALID_ARGUMENT'],
    ['secret length 2000', { session, generateKey: { spec: { type: 3 }, lengthBytes: 2000 } }, 'INVALID_ARGUMENT'],
    ['8 KiB + 1 key data', { session, importKey: { spec: { type: 3 }, format: 2, keyData: randomBytes(8193) } }, 'INVALID_ARGUMENT'],
    ['unknown key format', { session, importKey: { spec: { type: 3 }, format: 9 as never, keyData: randomBytes(32) } }, 'INVALID_ARGUMENT'],
    ['513-byte signature', { session, verify: { keyId: 'ec-key', data: new Uint8Array(1), signature: randomBytes(513) } }, 'INVALID_ARGUMENT'],
    ['empty signature', { session, verify: { keyId: 'ec-key', data: new Uint8Array(1) } }, 'INVALID_ARGUMENT'],
    ['65-byte MAC', { session, verifyMac: { keyId: 'mac-key', data: new Uint8Array(1), mac: randomBytes(65) } }, 'INVALID_ARGUMENT'],
    ['unknown signature algorithm', { session, sign: { keyId: 'ec-key', algorithm: 77 as never, data: new Uint8Array(1) } }, 'INVALID_ARGUMENT'],
    ['unknown signature encoding', { session, sign: { keyId: 'ec-key', encoding: 5 as never, data: new Uint8Array(1) } }, 'INVALID_ARGUMENT'],
    ['unknown digest', { session, digest: { algorithm: 12 as never, data: new Uint8Array(1) } }, 'INVALID_ARGUMENT'],
    ['list limit 101', { session, listKeys: { limit: 101 } }, 'INVALID_ARGUMENT'],
    ['unknown public key format', { session, exportPublicKey: { keyId: 'ec-key', format: 8 as never } }, 'INVALID_ARGUMENT'],
    ['empty old password', { session, changePassword: { newPassword: Buffer.from('new') } }, 'INVALID_ARGUMENT'],
    ['1025-byte new password', { session, changePassword: { oldPassword: Buffer.from(ALICE.password), newPassword: randomBytes(1025) } }, 'INVALID_ARGUMENT'],
    ['public objects of a 65-character username', { listPublicObjects: { username: 'u'.repeat(65) } }, 'INVALID_ARGUMENT'],
    ['public objects, limit 101', { listPublicObjects: { username: ALICE.name, limit: 101 } }, 'INVALID_ARGUMENT'],
    ['public objects after a bad key id', { listPublicObjects: { username: ALICE.name, afterKeyId: 'a b' } }, 'INVALID_ARGUMENT'],
    ['65-byte CKA_ID', { session, createCertificate: { id: randomBytes(65), der: randomBytes(100) } }, 'INVALID_ARGUMENT'],
    ['129-byte certificate label', { session, createCertificate: { label: 'l'.repeat(129), der: randomBytes(100) } }, 'INVALID_ARGUMENT'],
    ['certificate label with a tab', { session, createCertificate: { label: 'a\tb', der: randomBytes(100) } }, 'INVALID_ARGUMENT'],
    ['empty certificate', { session, createCertificate: {} }, 'INVALID_ARGUMENT'],
    ['16 KiB + 1 certificate', { session, createCertificate: { der: randomBytes(16 * 1024 + 1) } }, 'INVALID_ARGUMENT'],
    ['certificate that does not parse', { session, createCertificate: { der: randomBytes(200) } }, 'INVALID_ARGUMENT'],
    ['cert id of 31 hex characters', { session, deleteCertificate: { certId: 'a'.repeat(31) } }, 'INVALID_ARGUMENT'],
    ['cert id with a slash', { session, deleteCertificate: { certId: `${'a'.repeat(31)}/` } }, 'INVALID_ARGUMENT'],
    ['missing cert id', { session, deleteCertificate: {} }, 'INVALID_ARGUMENT'],
    ['65-byte ECDSA digest', { session, sign: { keyId: 'ec-key', algorithm: 12, data: randomBytes(65) } }, 'INVALID_ARGUMENT'],
    ['empty ECDSA digest', { session, sign: { keyId: 'ec-key', algorithm: 12 } }, 'INVALID_ARGUMENT'],
    ['prehashed ECDSA digest', { session, sign: { keyId: 'ec-key', algorithm: 12, data: randomBytes(32), prehashed: true } }, 'INVALID_ARGUMENT'],
  ];
  for (const [label, request, code] of cases) {
    const reply = await call(transport, request);
    t.equal(reply.error, code, `${label} → ${code}`);
    t.notMatch(reply.message ?? '', /l{100}|k{60}|u{60}/, `${label}: the message does not echo the value`);
  }
  t.equal((await snapshot(fixture.dbPath)), before, 'nothing changed');

  // Larger than the kernel's 32 KiB: the transport refuses it...
  await t.rejects(transport.request(new Uint8Array(32 * 1024 + 1)), new TransportError('EMSGSIZE', ''), 'the transport refuses > 32 KiB');
  // ...and so does the server if something bigger ever reaches it.
  const bigHub = new MemoryTransportHub({ maxPayloadBytes: 64 * 1024 });
  await fixture.server.stop();
  const server = await VhsmServer.open({ storagePath: fixture.dbPath, pbkdf2Iterations: TEST_ITERATIONS });
  server.serve(bigHub.createServerTransport());
  const bigPayload = encodeRequest({ version: PROTOCOL_VERSION, id: 5, session, digest: { data: randomBytes(40 * 1024) } });
  const reply = await sendRaw(bigHub.connect(identity()), bigPayload);
  t.equal(reply.error, 'BAD_REQUEST', 'a 40 KiB frame reaching the server is refused');
  await server.stop();
  await fixture.restart();
});

t.test('replayed requests: no effect beyond their own semantics', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const home = await fixture.connect({ pid: 10 });
  const session = await rawLogin(home, ALICE.name, ALICE.password);
  const generate = encodeRequest({ version: PROTOCOL_VERSION, id: 1, session, generateKey: { spec: { type: 2, keyId: 'once' } } });
  t.equal((await sendRaw(home, generate)).error, undefined, 'first generate');
  const afterFirst = (await snapshot(fixture.dbPath));
  t.equal((await sendRaw(home, generate)).error, 'KEY_EXISTS', 'replayed generate → KEY_EXISTS');
  t.equal((await snapshot(fixture.dbPath)), afterFirst, 'replay changed nothing');

  const sign = encodeRequest({ version: PROTOCOL_VERSION, id: 2, session, sign: { keyId: 'once', data: new Uint8Array(4) } });
  if (identitiesAreFree()) t.equal((await sendRaw(await fixture.connect({ pid: 11 }), sign)).error, 'SESSION_INVALID', 'captured sign replayed by another process');
  t.equal((await sendRaw(await fixture.connect({ ctid: 102, pid: 10 }), sign)).error, 'SESSION_INVALID', '… by another container');

  const remove = encodeRequest({ version: PROTOCOL_VERSION, id: 3, session, deleteKey: { keyId: 'once' } });
  t.equal((await sendRaw(home, remove)).error, undefined, 'delete');
  const afterDelete = (await snapshot(fixture.dbPath));
  t.equal((await sendRaw(home, remove)).error, 'KEY_NOT_FOUND', 'replayed delete → KEY_NOT_FOUND');

  const logout = encodeRequest({ version: PROTOCOL_VERSION, id: 4, session, logout: {} });
  t.equal((await sendRaw(home, logout)).error, undefined, 'logout');
  t.equal((await sendRaw(home, logout)).error, 'SESSION_INVALID', 'replayed logout');
  t.equal((await sendRaw(home, sign)).error, 'SESSION_INVALID', 'replayed sign after logout');
  t.equal((await sendRaw(home, generate)).error, 'SESSION_INVALID', 'replayed generate after logout');
  t.equal((await snapshot(fixture.dbPath)), afterDelete, 'nothing changed');
});

t.test('the server keeps serving under a random-byte flood', async (t) => {
  const fixture = await startFixture();
  t.teardown(() => fixture.close());
  const flood = await fixture.connect({ ctid: 666 });
  // Five waves of 100: a wave fits the kernel's per-container quota of pending requests.
  const garbage = (async () => {
    const all: unknown[] = [];
    for (let wave = 0; wave < 5; wave++) {
      all.push(...(await Promise.all(Array.from({ length: 100 }, () => sendRaw(flood, randomBytes(64)).catch((error: unknown) => error)))));
    }
    return all;
  })();
  const client = await fixture.client();
  const session = await client.login(ALICE.name, ALICE.password);
  t.equal((await session.digest(new Uint8Array(3))).length, 32, 'a normal client is served meanwhile');
  const replies = await garbage;
  t.ok(
    replies.every((reply) => !(reply instanceof Error) && (reply as { error?: string }).error !== undefined),
    'every garbage frame got an error response',
  );
  t.ok(v1.Response, 'protocol module loaded');
});
