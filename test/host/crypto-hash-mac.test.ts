/**
 * Digests (SHA-256/384/512, SHA3-256/512) and HMAC (SHA-256/384/512) against
 * @noble/hashes and the published vectors (FIPS 180/202 "abc" examples,
 * RFC 4231), one-shot and streaming (init/update/final for data larger
 * than one message), the stream limits, and random bytes.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { sha3_256, sha3_512 } from '@noble/hashes/sha3.js';
import { STREAM_CHUNK_BYTES, type DigestAlgorithmName, type MacAlgorithmName } from '../../client/index.js';
import { expectCode } from './helpers/expect.js';
import { ALICE, identity } from './helpers/fixture.js';
import { call, rawLogin } from './helpers/raw.js';
import { aliceSession, MESSAGE_SIZES, toHex } from './helpers/crypto-session.js';

type NobleHash = (data: Uint8Array) => Uint8Array;
const DIGESTS: readonly { name: DigestAlgorithmName; noble: NobleHash; abc: string }[] = [
  { name: 'sha256', noble: sha256, abc: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
  {
    name: 'sha384',
    noble: sha384,
    abc: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
  },
  {
    name: 'sha512',
    noble: sha512,
    abc: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
  },
  { name: 'sha3-256', noble: sha3_256, abc: '3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532' },
  {
    name: 'sha3-512',
    noble: sha3_512,
    abc: 'b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0',
  },
];

const MACS: readonly { name: MacAlgorithmName; hash: Parameters<typeof hmac>[0]; tc1: string }[] = [
  { name: 'hmac-sha256', hash: sha256, tc1: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  { name: 'hmac-sha384', hash: sha384, tc1: 'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6' },
  {
    name: 'hmac-sha512',
    hash: sha512,
    tc1: '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
  },
];

const messages = MESSAGE_SIZES.map((size) => randomBytes(size));
const large = randomBytes(3 * STREAM_CHUNK_BYTES + 12_345);

/** A copy with one bit changed (zeroing a byte would be a no-op when it is already 0). */
function flipFirstBit(mac: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(mac);
  copy[0]! ^= 1;
  return copy;
}

t.test('digests match @noble/hashes and the FIPS examples, one-shot and streamed', async (t) => {
  const { session } = await aliceSession(t);
  for (const { name, noble, abc } of DIGESTS) {
    t.equal(toHex(await session.digest(Buffer.from('abc'), { algorithm: name })), abc, `${name}("abc")`);
    await Promise.all(messages.map(async (m) => t.same(Buffer.from(await session.digest(m, { algorithm: name })), Buffer.from(noble(m)), `${name} of ${m.length} bytes`)));
    t.same(Buffer.from(await session.digest(large, { algorithm: name })), Buffer.from(noble(large)), `${name} of ${large.length} bytes (streamed by the client)`);
    const stream = await session.digestInit({ algorithm: name });
    for (const piece of [large.subarray(0, 1), large.subarray(1, 40_000), large.subarray(40_000, 40_000), large.subarray(40_000)]) await stream.update(piece);
    t.same(Buffer.from(await stream.final()), Buffer.from(noble(large)), `${name}: uneven updates`);
    t.notOk(stream.open, 'the stream has ended');
  }
  t.equal((await session.digest(new Uint8Array(0))).length, 32, 'the default digest is SHA-256');
});

t.test('HMAC matches @noble/hashes and RFC 4231, one-shot and streamed', async (t) => {
  const { session } = await aliceSession(t);
  const tc1 = await session.importKey({ type: 'hmac', format: 'raw', keyData: Buffer.alloc(20, 0x0b) });
  const tc3 = await session.importKey({ type: 'hmac', format: 'raw', keyData: Buffer.alloc(20, 0xaa) });
  t.equal(toHex(await session.mac(tc3.keyId, Buffer.alloc(50, 0xdd))), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe', 'RFC 4231 test case 3');
  for (const { name, hash, tc1: expected } of MACS) {
    t.equal(toHex(await session.mac(tc1.keyId, Buffer.from('Hi There'), { algorithm: name })), expected, `RFC 4231 test case 1, ${name}`);
    for (const length of [16, 64]) {
      const secret = randomBytes(length);
      const key = await session.importKey({ type: 'hmac', format: 'raw', keyData: secret });
      await Promise.all(
        messages.map(async (m) => {
          const theirs = hmac(hash, secret, m);
          t.same(Buffer.from(await session.mac(key.keyId, m, { algorithm: name })), Buffer.from(theirs), `${name}, ${length}-byte key, ${m.length} bytes`);
          t.equal(await session.verifyMac(key.keyId, m, theirs, { algorithm: name }), true, 'the @noble MAC verifies on the server');
        }),
      );
      const theirs = hmac(hash, secret, large);
      t.same(Buffer.from(await session.mac(key.keyId, large, { algorithm: name })), Buffer.from(theirs), `${name} of ${large.length} bytes (streamed)`);
      t.equal(await session.verifyMac(key.keyId, large, theirs, { algorithm: name }), true, 'streamed verify: valid');
      t.equal(await session.verifyMac(key.keyId, large, flipFirstBit(theirs), { algorithm: name }), false, 'streamed verify: invalid');
      t.equal(await session.verifyMac(key.keyId, large, theirs.subarray(1), { algorithm: name }), false, 'a truncated MAC is invalid');
    }
  }
});

t.test('streams: bounded per session, expire, end with the session, stay in it', async (t) => {
  let now = Date.now();
  const { fixture, session } = await aliceSession(t, { clock: () => now });
  const key = await session.generateKey({ type: 'hmac' });
  const streams = await Promise.all(Array.from({ length: 16 }, () => session.digestInit()));
  t.equal(fixture.server.stats.streams, 16, '16 open streams');
  await expectCode(t, session.macInit(key.keyId), 'RESOURCE_EXHAUSTED', 'a 17th stream in the session');
  await streams[0]!.abort();
  const mac = await session.macInit(key.keyId);
  await mac.update(Buffer.from('part one, '));

  const other = await (await fixture.client()).login(ALICE.name, ALICE.password);
  const otherStream = await other.digestInit();
  t.equal(otherStream.streamId, 1, "ids are per session: the other session's first stream is 1 too");
  await other.logout();
  t.equal(fixture.server.stats.streams, 16, 'logout dropped the other session’s stream');

  now += 30_000;
  await mac.update(Buffer.from('part two'));
  now += 45_000; // the digest streams are now idle for 75 s, the MAC stream for 45 s
  t.same(Buffer.from(await mac.final()), Buffer.from(await session.mac(key.keyId, Buffer.from('part one, part two'))), 'a stream kept in use survives');
  await expectCode(t, streams[1]!.final(), 'STREAM_NOT_FOUND', 'an idle stream expired');
  await expectCode(t, mac.final(), 'STREAM_NOT_FOUND', 'a finished stream is gone (client side)');
  t.equal(fixture.server.stats.streams, 14, 'expired streams are dropped');

  const long = await session.digestInit();
  for (let i = 0; i < 15; i++) {
    now += 59_000;
    await long.update(Buffer.of(i));
  }
  now += 20_000; // 905 s since it began, 20 s idle
  await expectCode(t, long.final(), 'STREAM_NOT_FOUND', 'a stream ends after 15 minutes even when in use');
  await session.logout();
  t.equal(fixture.server.stats.streams, 0, 'logout drops the session’s streams');
});

t.test('stream errors: clear codes, and the stream is left as it was', async (t) => {
  const { fixture, session } = await aliceSession(t);
  const transport = fixture.hub.connect(identity());
  const sid = await rawLogin(transport, ALICE.name, ALICE.password);
  const codeOf = async (request: Parameters<typeof call>[1]) => (await call(transport, { session: sid, ...request })).error ?? 'OK';
  const init = await call(transport, { session: sid, digestInit: { algorithm: 3 } });
  const streamId = init.response.digestInit!.streamId!;
  t.equal(await codeOf({ streamUpdate: { streamId, data: Buffer.from('ab') } }), 'OK', 'update');
  t.equal(await codeOf({ streamFinal: { streamId, expectedMac: randomBytes(64) } }), 'INVALID_ARGUMENT', 'expected_mac on a digest stream');
  t.equal(await codeOf({ streamUpdate: { streamId: streamId + 1, data: Buffer.from('x') } }), 'STREAM_NOT_FOUND', 'an unknown stream id');
  t.equal(await codeOf({ streamUpdate: { streamId: 0, data: Buffer.from('x') } }), 'INVALID_ARGUMENT', 'stream id 0');
  const other = await session.digestInit();
  t.equal(other.streamId, streamId, 'another session has its own id space');
  await other.update(Buffer.from('zzz'));
  const final = await call(transport, { session: sid, streamFinal: { streamId, data: Buffer.from('c') } });
  t.equal(toHex(final.response.streamFinal!.output!), DIGESTS[2]!.abc, 'the stream was not disturbed: SHA-512("abc")');
  t.equal(await codeOf({ streamFinal: { streamId } }), 'STREAM_NOT_FOUND', 'final ends the stream');
  t.same(Buffer.from(await other.final()), Buffer.from(sha256(Buffer.from('zzz'))), "the other session's stream is its own");

  await expectCode(t, session.macInit('no-such-key'), 'KEY_NOT_FOUND', 'MAC stream over a missing key');
  const ed = await session.generateKey({ type: 'ed25519' });
  await expectCode(t, session.macInit(ed.keyId), 'USAGE_NOT_ALLOWED', 'MAC stream with a signing key');
  const key = await session.generateKey({ type: 'hmac' });
  t.equal(await (await session.macInit(key.keyId)).verify(new Uint8Array(32), Buffer.from('x')), false, 'a wrong MAC: valid = false');
  const mac = await session.macInit(key.keyId, { algorithm: 'hmac-sha384' });
  await mac.update(Buffer.from('data'));
  await session.deleteKey(key.keyId);
  await expectCode(t, mac.final(), 'KEY_NOT_FOUND', 'the key was deleted mid-stream');
  t.equal(fixture.server.stats.streams, 0, 'no streams left open');
});

t.test('random bytes', async (t) => {
  const { session } = await aliceSession(t);
  const samples = await Promise.all([1, 32, 4096, 4096].map((length) => session.random(length)));
  t.same(samples.map((s) => s.length), [1, 32, 4096, 4096], 'the lengths asked for');
  t.not(toHex(samples[2]!), toHex(samples[3]!), 'two draws differ');
  const ones = samples[2]!.reduce((sum, byte) => sum + byte.toString(2).replace(/0/g, '').length, 0);
  t.ok(Math.abs(ones - 4096 * 4) < 600, `bit balance plausible (${ones} of 32768 bits set)`);
  await expectCode(t, session.random(0), 'INVALID_ARGUMENT', 'length 0');
  await expectCode(t, session.random(4097), 'INVALID_ARGUMENT', 'length 4097');
});
