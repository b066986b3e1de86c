/**
 * Sends thousands of malformed messages to the vhsm family: random bytes,
 * truncated and lying headers, unknown commands and attributes, bad lengths,
 * several messages per datagram. argv[2] = count, argv[3] = seed,
 * argv[4] = "client" (default) or "server" (first registers, then also
 * aims at the server-only commands). Reports how the sends went.
 */
import { GenlSocket } from '../../../netlink/genl-socket.js';
import { resolveFamily } from '../../../netlink/ctrl.js';
import { NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP } from '../../../netlink/constants.js';
import { VHSM_CMD_MAX, VHSM_A_MAX, VHSM_CMD_SERVER_REGISTER, VHSM_CMD_REPLY, VHSM_PAYLOAD_MAX } from '../../../netlink/vhsm-uapi.js';
import { emit } from './io.js';

const count = Number(process.argv[2] ?? 5000);
let seed = Number(process.argv[3] ?? 1) >>> 0;
const asServer = process.argv[4] === 'server';

// xorshift32: reproducible from the seed printed by the test.
function rnd(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}
const below = (n: number): number => rnd() % n;
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rnd() & 0xff);
const pick = <T>(xs: readonly T[]): T => xs[below(xs.length)]!;

const socket = GenlSocket.open({ timeoutMs: 5_000 });
const family = await resolveFamily(socket, 'vhsm');
if (asServer) await socket.request(family.id, VHSM_CMD_SERVER_REGISTER, [], { expect: 'ack' });

function attribute(): Uint8Array {
  const kind = below(10);
  const type = kind < 6 ? below(VHSM_A_MAX + 3) : kind < 8 ? rnd() & 0xffff : below(VHSM_A_MAX + 1) | 0x8000;
  const body =
    kind === 9 ? bytes(pick([VHSM_PAYLOAD_MAX - 8, VHSM_PAYLOAD_MAX + 1, 40_000])) : bytes(pick([0, 1, 2, 3, 4, 7, 8, 9, 12, 16, 64, below(300)]));
  const out = new Uint8Array(4 + body.length + 3);
  const view = new DataView(out.buffer);
  // The declared length lies one time in four.
  const declared = below(4) === 0 ? pick([0, 1, 3, 4, 5, body.length + 8, 0xffff, 4 + body.length - 1]) : 4 + body.length;
  view.setUint16(0, declared & 0xffff, true);
  view.setUint16(2, type, true);
  out.set(body, 4);
  return out.subarray(0, ((4 + body.length + 3) & ~3) - (below(5) === 0 ? below(4) : 0));
}

function message(): Uint8Array {
  if (below(8) === 0) return bytes(below(64)); // pure noise, often shorter than a header
  const attrs: Uint8Array[] = Array.from({ length: below(6) }, attribute);
  const payloadLen = 4 + attrs.reduce((n, a) => n + a.length, 0);
  const out = new Uint8Array(16 + payloadLen);
  const view = new DataView(out.buffer);
  const realLen = below(6) === 0 ? pick([0, 8, 15, 16, 17, 19, out.length + 4, out.length + 100, 0xffffffff]) : out.length;
  view.setUint32(0, realLen >>> 0, true);
  view.setUint16(4, below(10) === 0 ? below(40) : family.id, true);
  view.setUint16(6, NLM_F_REQUEST | (below(2) ? NLM_F_ACK : 0) | (below(8) === 0 ? NLM_F_DUMP : 0) | (below(8) === 0 ? rnd() & 0xfff0 : 0), true);
  view.setUint32(8, rnd(), true);
  view.setUint32(12, below(8) === 0 ? rnd() : 0, true);
  const cmd = below(5) === 0 ? rnd() & 0xff : asServer && below(2) ? VHSM_CMD_REPLY : below(VHSM_CMD_MAX + 2);
  out[16] = cmd;
  out[17] = below(6) === 0 ? rnd() & 0xff : 1;
  view.setUint16(18, below(6) === 0 ? rnd() & 0xffff : 0, true);
  let off = 20;
  for (const a of attrs) {
    out.set(a, off);
    off += a.length;
  }
  return out.subarray(0, below(10) === 0 ? below(out.length + 1) : out.length);
}

let sent = 0;
const sendErrors: Record<string, number> = {};
for (let i = 0; i < count; i++) {
  const parts = below(6) === 0 ? [message(), message()] : [message()];
  const datagram = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    datagram.set(p, off);
    off += p.length;
  }
  try {
    socket.sendRaw(datagram);
    sent++;
  } catch (err) {
    const code = String((err as { code?: string }).code ?? err);
    sendErrors[code] = (sendErrors[code] ?? 0) + 1;
  }
  // Let the receive side drain now and then so replies do not pile up.
  if (i % 200 === 0) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 200));
emit({ type: 'done', sent, sendErrors, counters: socket.counters });
socket.close();
process.exit(0);
