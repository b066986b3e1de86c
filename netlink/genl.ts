/**
 * Generic netlink messages: nlmsghdr + genlmsghdr + attributes.
 *
 *   u8 cmd | u8 version | u16 reserved (0)
 */
import { GENL_HDRLEN, NLMSG_MIN_TYPE } from './constants.js';
import { NetlinkFormatError } from './bytes.js';
import { AttrSet, encodeAttrs, type NlAttr } from './attributes.js';
import { encodeNlmsg, type NlMessage } from './message.js';

export interface GenlRequest {
  /** Family id (the nlmsg_type), from nlctrl. */
  readonly family: number;
  readonly cmd: number;
  readonly version: number;
  readonly flags: number;
  readonly seq: number;
  readonly portid?: number;
}

export interface GenlMessage extends NlMessage {
  readonly cmd: number;
  readonly version: number;
  readonly attrs: AttrSet;
}

/** A complete generic netlink message; `attrs` may be pre-encoded bytes. */
export function encodeGenlmsg(request: GenlRequest, attrs: readonly NlAttr[] | Uint8Array = []): Uint8Array {
  for (const [name, value] of [['cmd', request.cmd], ['version', request.version]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`genlmsghdr ${name} out of range: ${value}`);
  }
  const body = attrs instanceof Uint8Array ? attrs : encodeAttrs(attrs);
  const payload = new Uint8Array(GENL_HDRLEN + body.length);
  payload[0] = request.cmd;
  payload[1] = request.version;
  payload.set(body, GENL_HDRLEN);
  return encodeNlmsg(
    { type: request.family, flags: request.flags, seq: request.seq, portid: request.portid ?? 0 },
    payload,
  );
}

/** The genl command of a family message, without decoding its attributes. */
export function genlCmdOf(msg: NlMessage): number | undefined {
  return msg.type >= NLMSG_MIN_TYPE && msg.payload.length >= GENL_HDRLEN ? msg.payload[0] : undefined;
}

/** Decodes the genl header and the attributes of a family message. */
export function decodeGenlmsg(msg: NlMessage): GenlMessage {
  if (msg.type < NLMSG_MIN_TYPE) throw new NetlinkFormatError(`message type ${msg.type} is a control message, not a generic netlink one`);
  if (msg.payload.length < GENL_HDRLEN) {
    throw new NetlinkFormatError(`generic netlink message of ${msg.payload.length} bytes has no room for its ${GENL_HDRLEN}-byte header`);
  }
  return {
    type: msg.type,
    flags: msg.flags,
    seq: msg.seq,
    portid: msg.portid,
    payload: msg.payload,
    cmd: msg.payload[0]!,
    version: msg.payload[1]!,
    attrs: AttrSet.decode(msg.payload.subarray(GENL_HDRLEN)),
  };
}
