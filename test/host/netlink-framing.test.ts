/**
 * Netlink framing, byte for byte: nlmsghdr, genlmsghdr, attributes (nested,
 * u64, padding), NLMSG_ERROR with extended ack, NLMSG_DONE, nlctrl family
 * replies, malformed inputs, and the generated uAPI constants against the C
 * header itself.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../netlink/addon.js';
import { AttrSet, attr, decodeAttrs, encodeAttrs, read, required } from '../../netlink/attributes.js';
import { NetlinkFormatError } from '../../netlink/bytes.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_MAXATTR,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_ATTR_VERSION,
  CTRL_CMD_GETFAMILY,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  NLA_F_NET_BYTEORDER,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MISS_NEST,
  NLMSGERR_ATTR_MISS_TYPE,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
  NLMSGERR_ATTR_POLICY,
  NL_POLICY_TYPE_ATTR_MAX_VALUE_U,
  NL_POLICY_TYPE_ATTR_MIN_VALUE_U,
  NL_POLICY_TYPE_ATTR_TYPE,
} from '../../netlink/constants.js';
import { decodeFamily } from '../../netlink/ctrl.js';
import { errnoName, errnoNumber } from '../../netlink/errno.js';
import { NetlinkError, decodeDone, decodeExtack, decodeNlmsgErr } from '../../netlink/errors.js';
import { decodeGenlmsg, encodeGenlmsg, genlCmdOf } from '../../netlink/genl.js';
import { decodeNlmsgs, encodeNlmsg } from '../../netlink/message.js';
import * as uapi from '../../netlink/vhsm-uapi.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
const bytes = (spaced: string): Uint8Array => new Uint8Array(Buffer.from(spaced.replace(/\s+/g, ''), 'hex'));

t.test('nlmsghdr: encode byte for byte, padding included', async (t) => {
  const out = encodeNlmsg({ type: 0x10, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 7, portid: 0x01020304 }, Uint8Array.of(3, 1, 0, 0, 0xaa));
  t.equal(hex(out), '15 00 00 00 10 00 05 00 07 00 00 00 04 03 02 01 03 01 00 00 aa 00 00 00', 'nlmsg_len counts header + payload; buffer padded to 4');
  t.throws(() => encodeNlmsg({ type: 0x10000, flags: 0, seq: 0, portid: 0 }, new Uint8Array()), RangeError, 'type over u16 refused');
  t.throws(() => encodeNlmsg({ type: 1, flags: 0, seq: -1, portid: 0 }, new Uint8Array()), RangeError, 'negative seq refused');
});

t.test('nlmsghdr: several messages in one datagram', async (t) => {
  const a = encodeNlmsg({ type: 0x20, flags: NLM_F_MULTI, seq: 1, portid: 9 }, Uint8Array.of(1, 2, 3)); // padded
  const b = encodeNlmsg({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 1, portid: 9 }, new Uint8Array(4));
  const msgs = decodeNlmsgs(new Uint8Array([...a, ...b]));
  t.equal(msgs.length, 2);
  t.match(msgs[0], { type: 0x20, flags: NLM_F_MULTI, seq: 1, portid: 9 });
  t.equal(hex(msgs[0]!.payload), '01 02 03', 'payload ends at nlmsg_len, not at the padding');
  t.match(msgs[1], { type: NLMSG_DONE, seq: 1 });
  // The last message may lack its padding.
  t.equal(decodeNlmsgs(a.subarray(0, 19)).length, 1, 'missing final padding tolerated');
});

t.test('nlmsghdr: malformed datagrams are rejected with clear errors', async (t) => {
  const good = encodeNlmsg({ type: 0x20, flags: 0, seq: 1, portid: 0 }, new Uint8Array(8));
  t.throws(() => decodeNlmsgs(new Uint8Array(0)), { name: 'NetlinkFormatError', message: /empty datagram/ });
  t.throws(() => decodeNlmsgs(good.subarray(0, 10)), { name: 'NetlinkFormatError', message: /10 bytes left, header needs 16/ });
  const short = good.slice();
  short[0] = 12;
  t.throws(() => decodeNlmsgs(short), { message: /nlmsg_len 12 is shorter than its header/ });
  const long = good.slice();
  long[0] = 200;
  t.throws(() => decodeNlmsgs(long), { message: /nlmsg_len 200 runs past the end \(24 bytes left\)/ });
  t.throws(() => decodeNlmsgs(new Uint8Array([...good, 1, 2, 3, 4, 5])), { message: /offset 24: 5 bytes left/ }, 'trailing garbage after a message');
});

t.test('attributes: each kind encodes byte for byte', async (t) => {
  t.equal(hex(encodeAttrs([attr.u8(1, 0xab)])), '05 00 01 00 ab 00 00 00', 'u8 + 3 bytes padding');
  t.equal(hex(encodeAttrs([attr.u16(2, 0x1234)])), '06 00 02 00 34 12 00 00', 'u16 little-endian + 2 bytes padding');
  t.equal(hex(encodeAttrs([attr.u32(3, 0xdeadbeef)])), '08 00 03 00 ef be ad de', 'u32');
  t.equal(hex(encodeAttrs([attr.u64(4, 0x0102030405060708n)])), '0c 00 04 00 08 07 06 05 04 03 02 01', 'u64, 12 bytes, no padding needed');
  t.equal(hex(encodeAttrs([attr.u64(4, 0xffff_ffff_ffff_ffffn)])), '0c 00 04 00 ff ff ff ff ff ff ff ff', 'u64 max');
  t.equal(hex(encodeAttrs([attr.string(5, 'ab')])), '07 00 05 00 61 62 00 00', 'string NUL-terminated, nla_len counts the NUL');
  t.equal(hex(encodeAttrs([attr.binary(6, Uint8Array.of(1, 2, 3, 4, 5))])), '09 00 06 00 01 02 03 04 05 00 00 00', 'binary + padding');
  t.equal(hex(encodeAttrs([attr.flag(7)])), '04 00 07 00', 'flag: header only');
  t.equal(
    hex(encodeAttrs([attr.nested(8, [attr.u32(1, 7), attr.u8(2, 1)])])),
    '14 00 08 80 08 00 01 00 07 00 00 00 05 00 02 00 01 00 00 00',
    'nest: NLA_F_NESTED set, length covers padded children',
  );
  t.equal(
    hex(encodeAttrs([attr.u8(1, 1), attr.u64(2, 1n)])),
    '05 00 01 00 01 00 00 00 0c 00 02 00 01 00 00 00 00 00 00 00',
    'u64 after a padded u8 starts on the next 4-byte boundary',
  );
  t.throws(() => attr.u8(1, 256), RangeError);
  t.throws(() => attr.u32(1, -1), RangeError);
  t.throws(() => attr.u64(1, -1n), RangeError);
  t.throws(() => attr.u64(1, 1n << 64n), RangeError);
  t.throws(() => attr.u32(0x4000, 1), RangeError, 'type bits 14/15 are flags, not type');
  t.throws(() => attr.string(1, 'a\0b'), RangeError, 'embedded NUL refused');
  t.throws(() => attr.binary(1, new Uint8Array(0x10000)), RangeError, 'payload over nla_len range refused');
});

t.test('attributes: decode, nested, u64 after a PAD attribute, byte order flag', async (t) => {
  const VHSM_A_PAD = 1;
  // What nla_put_u64_64bit emits where alignment needs it: a zero-length PAD first.
  const wire = bytes('08 00 02 00 65 00 00 00  04 00 01 00  0c 00 07 00 88 77 66 55 44 33 22 11  0b 00 0a 00 76 68 73 6d 2d 31 00 00  14 00 0e 80 0c 00 02 00 2a 00 00 00 00 00 00 00 04 00 01 00');
  const set = AttrSet.decode(wire);
  t.equal(set.u32(2), 101, 'u32');
  t.equal(set.u64(7), 0x1122334455667788n, 'u64 after the PAD');
  t.equal(set.binary(VHSM_A_PAD)?.length, 0, 'PAD kept as an empty attribute, ignored by readers');
  t.equal(set.string(10), 'vhsm-1', 'string without its NUL');
  const nest = required(set.nested(14), 'nest');
  t.equal(set.get(14)?.nested, true, 'NLA_F_NESTED seen');
  t.equal(nest.u64(2), 42n, 'nested u64');
  t.equal(nest.flag(1), true, 'nested flag');
  t.equal(set.u32(99), undefined, 'absent attribute');
  t.throws(() => required(set.u32(99), 'THING'), { name: 'NetlinkFormatError', message: 'missing attribute: THING' });

  const be = decodeAttrs(bytes('06 00 03 40 12 34 00 00'));
  t.equal(be[0]!.type, 3, 'type without flag bits');
  t.equal(be[0]!.netByteOrder, true);
  t.equal(read.u16(be[0]!), 0x1234, 'NLA_F_NET_BYTEORDER reads big-endian');
  t.equal(NLA_F_NET_BYTEORDER, 0x4000);

  const dup = AttrSet.decode(encodeAttrs([attr.u32(1, 1), attr.u32(1, 2)]));
  t.equal(dup.u32(1), 2, 'a repeated type keeps the last, as nla_parse does');
  t.same(dup.all(1).map(read.u32), [1, 2], 'all() returns every occurrence');

  const round = encodeAttrs([attr.u8(1, 200), attr.u16(2, 65535), attr.u32(3, 4294967295), attr.u64(4, 2n ** 63n), attr.string(5, 'héllo'), attr.flag(6)]);
  const r = AttrSet.decode(round);
  t.same([r.u8(1), r.u16(2), r.u32(3), r.u64(4), r.string(5), r.flag(6)], [200, 65535, 4294967295, 2n ** 63n, 'héllo', true], 'round trip');
});

t.test('attributes: malformed input is rejected with clear errors', async (t) => {
  t.throws(() => decodeAttrs(bytes('05 00 01')), { name: 'NetlinkFormatError', message: /3 bytes left, header needs 4/ });
  t.throws(() => decodeAttrs(bytes('02 00 01 00')), { message: /nla_len 2 is shorter than its header/ });
  t.throws(() => decodeAttrs(bytes('10 00 01 00 00 00 00 00')), { message: /nla_len 16 runs past the end \(8 bytes left\)/ });
  t.throws(() => decodeAttrs(bytes('08 00 01 00 00 00 00 00 01 00')), { message: /offset 8: 2 bytes left/ });
  const set = AttrSet.decode(bytes('07 00 01 00 01 02 03 00  06 00 02 00 61 62 00 00  07 00 03 00 ff fe 00 00'));
  t.throws(() => set.u32(1), { message: 'attribute 1: u32 needs 4 bytes, got 3' });
  t.throws(() => set.u64(1), { message: 'attribute 1: u64 needs 8 bytes, got 3' });
  t.throws(() => set.string(2), { message: 'attribute 2: string is not NUL-terminated' });
  t.throws(() => set.string(3), { message: 'attribute 3: string is not valid UTF-8' });
  t.throws(() => AttrSet.decode(bytes('08 00 01 80 ff ff 00 00')).nested(1), { name: 'NetlinkFormatError' }, 'a nest holding garbage');
});

t.test('genl: a GETFAMILY request for "nlctrl", byte for byte', async (t) => {
  const msg = encodeGenlmsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: 1, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 7 }, [
    attr.string(CTRL_ATTR_FAMILY_NAME, 'nlctrl'),
  ]);
  t.equal(hex(msg), '20 00 00 00 10 00 05 00 07 00 00 00 00 00 00 00 03 01 00 00 0b 00 02 00 6e 6c 63 74 72 6c 00 00');
  const [decoded] = decodeNlmsgs(msg);
  const g = decodeGenlmsg(decoded!);
  t.match(g, { type: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: 1, seq: 7 });
  t.equal(g.attrs.string(CTRL_ATTR_FAMILY_NAME), 'nlctrl');
  t.equal(genlCmdOf(decoded!), CTRL_CMD_GETFAMILY);
  t.throws(() => decodeGenlmsg({ type: 0x20, flags: 0, seq: 0, portid: 0, payload: Uint8Array.of(1, 1) }), { message: /no room for its 4-byte header/ });
  t.throws(() => decodeGenlmsg({ type: NLMSG_ERROR, flags: 0, seq: 0, portid: 0, payload: new Uint8Array(4) }), { message: /control message/ });
  t.throws(() => encodeGenlmsg({ family: 16, cmd: 256, version: 1, flags: 0, seq: 0 }), RangeError);
});

t.test('nlctrl: a NEWFAMILY reply decodes to id, version and multicast groups', async (t) => {
  const reply = encodeGenlmsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD_NEWFAMILY, version: 2, flags: 0, seq: 3, portid: 77 }, [
    attr.u16(CTRL_ATTR_FAMILY_ID, 0x1a),
    attr.string(CTRL_ATTR_FAMILY_NAME, 'vhsm'),
    attr.u32(CTRL_ATTR_VERSION, 1),
    attr.u32(CTRL_ATTR_MAXATTR, 15),
    attr.nested(CTRL_ATTR_MCAST_GROUPS, [
      attr.nested(1, [attr.string(CTRL_ATTR_MCAST_GRP_NAME, 'events'), attr.u32(CTRL_ATTR_MCAST_GRP_ID, 9)]),
    ]),
  ]);
  const family = decodeFamily(decodeGenlmsg(decodeNlmsgs(reply)[0]!));
  t.match(family, { id: 0x1a, name: 'vhsm', version: 1, maxAttr: 15, hdrSize: 0 });
  t.same([...family.mcastGroups], [['events', 9]]);
});

/** NLMSG_ERROR as netlink_ack() builds it. */
function nlmsgerr(error: number, request: Uint8Array, flags: number, tlvs: Uint8Array = new Uint8Array()): Uint8Array {
  const capped = (flags & NLM_F_CAPPED) !== 0;
  const reqLen = new DataView(request.buffer, request.byteOffset).getUint32(0, true);
  const echoed = capped ? request.subarray(0, 16) : request.subarray(0, reqLen);
  const echoedPadded = new Uint8Array((echoed.length + 3) & ~3);
  echoedPadded.set(echoed);
  const body = new Uint8Array(4 + echoedPadded.length + tlvs.length);
  new DataView(body.buffer).setInt32(0, error, true);
  body.set(echoedPadded, 4);
  body.set(tlvs, 4 + echoedPadded.length);
  return encodeNlmsg({ type: NLMSG_ERROR, flags, seq: 5, portid: 1234 }, body);
}

t.test('NLMSG_ERROR with extended ack decodes into a NetlinkError', async (t) => {
  const request = encodeGenlmsg({ family: 0x1a, cmd: 9, version: 1, flags: NLM_F_REQUEST, seq: 5 }, [attr.binary(10, Uint8Array.of(1, 2, 3))]);
  const tlvs = encodeAttrs([
    attr.string(NLMSGERR_ATTR_MSG, 'container not bound to a CTID'),
    attr.u32(NLMSGERR_ATTR_OFFS, 20),
    attr.nested(NLMSGERR_ATTR_POLICY, [
      attr.u32(NL_POLICY_TYPE_ATTR_TYPE, 10),
      attr.u64(NL_POLICY_TYPE_ATTR_MIN_VALUE_U, 0n),
      attr.u64(NL_POLICY_TYPE_ATTR_MAX_VALUE_U, 32768n),
    ]),
  ]);
  const wire = nlmsgerr(-13, request, NLM_F_CAPPED | NLM_F_ACK_TLVS, tlvs);
  t.equal(
    hex(wire.subarray(0, 40)),
    '74 00 00 00 02 00 00 03 05 00 00 00 d2 04 00 00 f3 ff ff ff 1c 00 00 00 1a 00 01 00 05 00 00 00 00 00 00 00 22 00 01 00',
    'the hand-built message is what the kernel sends (header, -13, echoed request header, first TLV)',
  );
  const [msg] = decodeNlmsgs(wire);
  const err = decodeNlmsgErr(msg!);
  t.equal(err.error, -13);
  t.match(err.request, { length: 28, type: 0x1a, seq: 5, flags: NLM_F_REQUEST });
  t.equal(err.requestPayload, undefined, 'capped: no echoed payload');
  t.same(err.extack, { message: 'container not bound to a CTID', offset: 20, policy: { type: 'binary', minValue: 0n, maxValue: 32768n } });

  const e = new NetlinkError(-err.error, err.extack);
  t.ok(e instanceof Error);
  t.equal(e.name, 'NetlinkError');
  t.equal(e.errno, 13);
  t.equal(e.code, 'EACCES');
  t.equal(e.origin, 'kernel');
  t.equal(e.message, 'EACCES: container not bound to a CTID (at byte 20 of the request) (policy: binary, min 0, max 32768)');

  // Not capped: the whole request comes back, TLVs follow it at a 4-byte boundary.
  const odd = encodeNlmsg({ type: 0x1a, flags: NLM_F_REQUEST, seq: 5, portid: 0 }, Uint8Array.of(9, 1, 0, 0, 0xee)); // nlmsg_len 21
  const full = decodeNlmsgErr(decodeNlmsgs(nlmsgerr(-22, odd, NLM_F_ACK_TLVS, encodeAttrs([attr.u32(NLMSGERR_ATTR_MISS_TYPE, 10), attr.u32(NLMSGERR_ATTR_MISS_NEST, 24)])))[0]!);
  t.equal(full.error, -22);
  t.equal(hex(full.requestPayload!), '09 01 00 00 ee', 'echoed payload');
  t.same(full.extack, { missingType: 10, missingNest: 24 });
  t.equal(new NetlinkError(22, full.extack).message, 'EINVAL: invalid argument (missing attribute 10 in the nest at byte 24)');

  // A plain ACK.
  const ack = decodeNlmsgErr(decodeNlmsgs(nlmsgerr(0, request, NLM_F_CAPPED))[0]!);
  t.same({ error: ack.error, extack: ack.extack }, { error: 0, extack: {} });
});

t.test('NLMSG_ERROR and NLMSG_DONE: malformed ones are rejected', async (t) => {
  const request = encodeNlmsg({ type: 0x1a, flags: NLM_F_REQUEST, seq: 5, portid: 0 }, new Uint8Array(8));
  const mk = (payload: Uint8Array, flags = 0) => decodeNlmsgs(encodeNlmsg({ type: NLMSG_ERROR, flags, seq: 5, portid: 0 }, payload))[0]!;
  t.throws(() => decodeNlmsgErr(mk(new Uint8Array(12))), { name: 'NetlinkFormatError', message: /shorter than struct nlmsgerr \(20\)/ });
  const positive = nlmsgerr(0, request, NLM_F_CAPPED);
  positive[16] = 5;
  t.throws(() => decodeNlmsgErr(decodeNlmsgs(positive)[0]!), { message: /positive error 5/ });
  const truncatedEcho = nlmsgerr(-1, request, 0).subarray(0, 16 + 20 + 4);
  new DataView(truncatedEcho.buffer, truncatedEcho.byteOffset).setUint32(0, 40, true);
  t.throws(() => decodeNlmsgErr(decodeNlmsgs(truncatedEcho)[0]!), { message: /echoes 8 request bytes but carries 4/ });
  const badTlv = nlmsgerr(-1, request, NLM_F_CAPPED | NLM_F_ACK_TLVS, bytes('09 00 01 00 61 62'));
  t.throws(() => decodeNlmsgErr(decodeNlmsgs(badTlv)[0]!), { name: 'NetlinkFormatError' }, 'extack TLV running past the end');
  t.throws(() => decodeExtack(bytes('06 00 01 00 61 62 00 00')), { message: /not NUL-terminated/ });

  const done = (payload: Uint8Array, flags = NLM_F_MULTI) => decodeNlmsgs(encodeNlmsg({ type: NLMSG_DONE, flags, seq: 1, portid: 0 }, payload))[0]!;
  t.same(decodeDone(done(new Uint8Array(4))), { error: 0, extack: {} });
  const withError = new Uint8Array([...new Uint8Array(new Int32Array([-1]).buffer), ...encodeAttrs([attr.string(NLMSGERR_ATTR_MSG, 'no dumping for you')])]);
  t.same(decodeDone(done(withError, NLM_F_MULTI | NLM_F_ACK_TLVS)), { error: -1, extack: { message: 'no dumping for you' } });
  t.throws(() => decodeDone(done(new Uint8Array(2))), { message: /has no error code/ });
});

t.test('errno names come from one table', async (t) => {
  t.equal(errnoName(13), 'EACCES');
  t.equal(errnoName(-2), 'ENOENT', 'sign ignored');
  t.equal(errnoName(11), 'EAGAIN', 'EAGAIN, not EWOULDBLOCK');
  t.equal(errnoName(95), 'EOPNOTSUPP', "the kernel's name for 95");
  t.equal(errnoName(111), 'ECONNREFUSED');
  t.equal(errnoName(9999), 'E9999', 'unknown numbers stay visible');
  t.equal(errnoNumber('ENOBUFS'), 105);
  t.equal(errnoNumber('ENOPE'), undefined);
  t.ok(new NetlinkFormatError('x') instanceof Error);
});

t.test('gen-uapi: the generated module is current and matches the C header', async (t) => {
  const root = packageRoot();
  const check = spawnSync(process.execPath, [join(root, 'scripts', 'gen-uapi.mjs'), '--check'], { encoding: 'utf8' });
  t.equal(check.status, 0, `netlink/vhsm-uapi.ts is up to date ${check.stderr}`);
  const generated = readFileSync(join(root, 'netlink', 'vhsm-uapi.ts'), 'utf8');
  t.match(generated, /^\/\/ generated by scripts\/gen-uapi\.mjs from kernel\/uapi\/vhsm\.h, do not edit\./, 'header comment');

  t.equal(uapi.VHSM_GENL_NAME, 'vhsm');
  t.equal(uapi.VHSM_PAYLOAD_MAX, 32768);
  t.equal(uapi.VHSM_CMD_REQUEST, 9);
  t.equal(uapi.VHSM_A_PAYLOAD, 10);
  t.equal(uapi.vhsm_stat.VHSM_STAT_UNDELIVERED, 15);
  t.equal(uapi.VHSM_CMD_MAX, uapi.__VHSM_CMD_MAX - 1);

  // Ask the C compiler what each name means and compare with every export.
  const names = Object.entries(uapi).filter(([, v]) => typeof v === 'number' || typeof v === 'string');
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-uapi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const prints = names.map(([name, v]) =>
    typeof v === 'string' ? `printf("${name}=%s\\n", ${name});` : `printf("${name}=%lld\\n", (long long)(${name}));`);
  writeFileSync(join(dir, 'probe.c'), `#include <stdio.h>\n#include "${join(root, 'kernel', 'uapi', 'vhsm.h')}"\nint main(void) {\n${prints.join('\n')}\nreturn 0;\n}\n`);
  const cc = spawnSync('cc', ['-Wall', '-Werror', '-o', join(dir, 'probe'), join(dir, 'probe.c')], { encoding: 'utf8' });
  if (cc.error) throw new Error(`a C compiler (cc) is needed to check the generated constants: ${cc.error.message}`);
  t.equal(cc.status, 0, `probe compiles: ${cc.stderr}`);
  const run = spawnSync(join(dir, 'probe'), { encoding: 'utf8' });
  const fromC = Object.fromEntries(run.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
  t.same(fromC, Object.fromEntries(names.map(([n, v]) => [n, String(v)])), `all ${names.length} constants agree with the C compiler`);
  const enumObjects = Object.entries(uapi).filter(([, v]) => typeof v === 'object');
  t.same(enumObjects.map(([n]) => n).sort(), ['vhsm_attr', 'vhsm_cmd', 'vhsm_server_attr', 'vhsm_stat'], 'one object per enum');
});

t.test('gen-uapi: fails loudly on what it does not understand', async (t) => {
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-uapi-bad-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cases: Array<[string, RegExp]> = [
    ['#include <linux/types.h>\n', /line 1: preprocessor line not understood/],
    ['#define A foo\n', /neither an integer nor a string literal/],
    ['enum a {\n  X = 1 * 2,\n};\n', /line 2: unexpected "\*"/],
    ['enum a { X = Y };\n', /unknown name Y/],
    ['struct s { int x; };\n', /expected "enum name \{ \.\.\. \};"/],
    ['enum a { X };\nenum b { X };\n', /X defined twice/],
    ['/* never closed\n', /unterminated comment/],
    ['#define F(x) (x)\n', /not understood/],
  ];
  for (const [text, expected] of cases) {
    const file = join(dir, 'bad.h');
    writeFileSync(file, text);
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'gen-uapi.mjs'), '--header', file, '--stdout'], { encoding: 'utf8' });
    t.equal(r.status, 1, `refused: ${JSON.stringify(text)}`);
    t.match(r.stderr, expected);
    t.equal(r.stdout, '', 'nothing written');
  }
});
