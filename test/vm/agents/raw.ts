/**
 * Speaks raw generic netlink to the vhsm family, to try what a hostile
 * container would: any command, any attributes. Commands on stdin:
 *   {cmd:"genl", op, attrs:[{type, u32|u64|hex}], expect?}  -> {type:"genl", ok, code?, errno?, message?}
 *   {cmd:"replies", from, to}   REPLY for every request id in [from, to] -> {type:"replies", codes}
 *   {cmd:"request", hex}        a REQUEST; -> {type:"request", ok, message}: the RESPONSE's
 *                               header and attributes, all but its seq (ours)
 */
import { GenlSocket } from '../../../netlink/genl-socket.js';
import { resolveFamily } from '../../../netlink/ctrl.js';
import { attr, type NlAttr } from '../../../netlink/attributes.js';
import { NetlinkError } from '../../../netlink/errors.js';
import { VHSM_CMD_REPLY, VHSM_CMD_REQUEST, VHSM_A_REQ_ID, VHSM_A_PAYLOAD } from '../../../netlink/vhsm-uapi.js';
import { emit, onCommand } from './io.js';

interface AttrSpec {
  type: number;
  u32?: number;
  u64?: string;
  hex?: string;
}

const socket = GenlSocket.open({ timeoutMs: 10_000 });
const family = await resolveFamily(socket, 'vhsm');
emit({ type: 'ready', family: family.id, pid: process.pid });

function toAttr(a: AttrSpec): NlAttr {
  if (a.u32 !== undefined) return attr.u32(a.type, a.u32);
  if (a.u64 !== undefined) return attr.u64(a.type, BigInt(a.u64));
  return attr.binary(a.type, Buffer.from(a.hex ?? '', 'hex'));
}

async function outcome(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
    return { ok: true };
  } catch (err) {
    if (err instanceof NetlinkError) return { ok: false, code: err.code, errno: err.errno, message: err.extack.message ?? '' };
    return { ok: false, code: 'LOCAL', message: String(err) };
  }
}

onCommand(async (cmd) => {
  if (cmd.cmd === 'genl') {
    const attrs = ((cmd.attrs as AttrSpec[] | undefined) ?? []).map(toAttr);
    const expect = (cmd.expect as 'ack' | 'reply' | undefined) ?? 'ack';
    emit({ type: 'genl', ...(await outcome(socket.request(family.id, Number(cmd.op), attrs, { expect }))) });
  } else if (cmd.cmd === 'request') {
    const [m] = await socket.request(family.id, VHSM_CMD_REQUEST, [attr.binary(VHSM_A_PAYLOAD, Buffer.from(String(cmd.hex), 'hex'))], { expect: 'reply' });
    const message = m && {
      type: m.type,
      flags: m.flags,
      portid: m.portid,
      cmd: m.cmd,
      version: m.version,
      attrs: m.attrs.list.map((a) => ({ type: a.type, hex: Buffer.from(a.payload).toString('hex') })),
    };
    emit({ type: 'request', ok: m !== undefined, message });
  } else if (cmd.cmd === 'replies') {
    const codes: Record<string, number> = {};
    for (let id = Number(cmd.from); id <= Number(cmd.to); id++) {
      const r = await outcome(
        socket.request(family.id, VHSM_CMD_REPLY, [attr.u64(VHSM_A_REQ_ID, BigInt(id)), attr.binary(VHSM_A_PAYLOAD, Buffer.from('forged'))], { expect: 'ack' }),
      );
      const key = r.ok ? 'OK' : String(r.code);
      codes[key] = (codes[key] ?? 0) + 1;
    }
    emit({ type: 'replies', codes });
  }
});
