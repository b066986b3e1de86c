/**
 * Errors the kernel reports: NLMSG_ERROR (with extended ack TLVs when
 * NETLINK_EXT_ACK is on) and the error code in a dump's NLMSG_DONE.
 *
 * NLMSG_ERROR payload (struct nlmsgerr):
 *   s32 error (0 = ACK, else -errno) | the request's nlmsghdr
 *   | the request's payload, unless NLM_F_CAPPED | pad to 4
 *   | extack TLVs, if NLM_F_ACK_TLVS
 */
import {
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_COOKIE,
  NLMSGERR_ATTR_MISS_NEST,
  NLMSGERR_ATTR_MISS_TYPE,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
  NLMSGERR_ATTR_POLICY,
  NL_ATTR_TYPE_NAMES,
  NL_POLICY_TYPE_ATTR_BITFIELD32_MASK,
  NL_POLICY_TYPE_ATTR_MASK,
  NL_POLICY_TYPE_ATTR_MAX_LENGTH,
  NL_POLICY_TYPE_ATTR_MAX_VALUE_S,
  NL_POLICY_TYPE_ATTR_MAX_VALUE_U,
  NL_POLICY_TYPE_ATTR_MIN_LENGTH,
  NL_POLICY_TYPE_ATTR_MIN_VALUE_S,
  NL_POLICY_TYPE_ATTR_MIN_VALUE_U,
  NL_POLICY_TYPE_ATTR_POLICY_IDX,
  NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE,
  NL_POLICY_TYPE_ATTR_TYPE,
} from './constants.js';
import { AttrSet } from './attributes.js';
import { HOST_LITTLE_ENDIAN, NetlinkFormatError, align4, viewOf } from './bytes.js';
import { errnoDescription, errnoName } from './errno.js';
import { decodeNlmsgHeader, type NlMessage, type NlMsgHeader } from './message.js';

/** What NLMSGERR_ATTR_POLICY says the offending attribute should have been. */
export interface ExtackPolicy {
  readonly type?: string;
  readonly minValue?: bigint;
  readonly maxValue?: bigint;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly policyIndex?: number;
  readonly maxType?: number;
  readonly mask?: bigint;
}

/** Extended ack: why the kernel refused, as far as it said. */
export interface Extack {
  readonly message?: string;
  /** Byte offset of the offending attribute in the request (from its nlmsghdr). */
  readonly offset?: number;
  readonly cookie?: Uint8Array;
  readonly policy?: ExtackPolicy;
  readonly missingType?: number;
  readonly missingNest?: number;
}

export type NetlinkErrorOrigin = 'kernel' | 'local';

/**
 * A request failed. `errno` is positive ('EACCES' = 13); `origin` tells a
 * kernel refusal from a local one (timeout, closed socket: code 'ECLOSED',
 * errno 0).
 */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  readonly code: string;

  constructor(
    readonly errno: number,
    readonly extack: Extack = {},
    readonly origin: NetlinkErrorOrigin = 'kernel',
    code?: string,
    message?: string,
  ) {
    const name = code ?? errnoName(errno);
    super(message ?? describe(name, errno, extack));
    this.code = name;
  }

  static timeout(ms: number): NetlinkError {
    return new NetlinkError(110, {}, 'local', 'ETIMEDOUT', `ETIMEDOUT: no answer from the kernel within ${ms} ms`);
  }

  static closed(): NetlinkError {
    return new NetlinkError(0, {}, 'local', 'ECLOSED', 'ECLOSED: the netlink socket was closed');
  }
}

function describe(code: string, errno: number, extack: Extack): string {
  let text = `${code}: ${extack.message ?? errnoDescription(errno)}`;
  if (extack.missingType !== undefined) {
    text += ` (missing attribute ${extack.missingType}${extack.missingNest !== undefined ? ` in the nest at byte ${extack.missingNest}` : ''})`;
  }
  if (extack.offset !== undefined) text += ` (at byte ${extack.offset} of the request)`;
  const p = extack.policy;
  if (p) {
    const parts = [p.type, p.minLength !== undefined ? `min length ${p.minLength}` : undefined,
      p.maxLength !== undefined ? `max length ${p.maxLength}` : undefined,
      p.minValue !== undefined ? `min ${p.minValue}` : undefined,
      p.maxValue !== undefined ? `max ${p.maxValue}` : undefined].filter((x) => x !== undefined);
    if (parts.length > 0) text += ` (policy: ${parts.join(', ')})`;
  }
  return text;
}

function decodePolicy(set: AttrSet): ExtackPolicy {
  const typeIndex = set.u32(NL_POLICY_TYPE_ATTR_TYPE);
  const out: { -readonly [K in keyof ExtackPolicy]: ExtackPolicy[K] } = {};
  if (typeIndex !== undefined) out.type = NL_ATTR_TYPE_NAMES[typeIndex] ?? `type ${typeIndex}`;
  const minValue = set.s64(NL_POLICY_TYPE_ATTR_MIN_VALUE_S) ?? set.u64(NL_POLICY_TYPE_ATTR_MIN_VALUE_U);
  const maxValue = set.s64(NL_POLICY_TYPE_ATTR_MAX_VALUE_S) ?? set.u64(NL_POLICY_TYPE_ATTR_MAX_VALUE_U);
  if (minValue !== undefined) out.minValue = minValue;
  if (maxValue !== undefined) out.maxValue = maxValue;
  const minLength = set.u32(NL_POLICY_TYPE_ATTR_MIN_LENGTH);
  const maxLength = set.u32(NL_POLICY_TYPE_ATTR_MAX_LENGTH);
  if (minLength !== undefined) out.minLength = minLength;
  if (maxLength !== undefined) out.maxLength = maxLength;
  const policyIndex = set.u32(NL_POLICY_TYPE_ATTR_POLICY_IDX);
  const maxType = set.u32(NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE);
  if (policyIndex !== undefined) out.policyIndex = policyIndex;
  if (maxType !== undefined) out.maxType = maxType;
  const mask = set.u64(NL_POLICY_TYPE_ATTR_MASK);
  const mask32 = set.u32(NL_POLICY_TYPE_ATTR_BITFIELD32_MASK);
  if (mask !== undefined) out.mask = mask;
  else if (mask32 !== undefined) out.mask = BigInt(mask32);
  return out;
}

/** Decodes extack TLVs (NLMSGERR_ATTR_*); unknown ones are ignored. */
export function decodeExtack(tlvs: Uint8Array): Extack {
  const set = AttrSet.decode(tlvs);
  const out: { -readonly [K in keyof Extack]: Extack[K] } = {};
  const message = set.string(NLMSGERR_ATTR_MSG);
  const offset = set.u32(NLMSGERR_ATTR_OFFS);
  const cookie = set.binary(NLMSGERR_ATTR_COOKIE);
  const policy = set.nested(NLMSGERR_ATTR_POLICY);
  const missingType = set.u32(NLMSGERR_ATTR_MISS_TYPE);
  const missingNest = set.u32(NLMSGERR_ATTR_MISS_NEST);
  if (message !== undefined) out.message = message;
  if (offset !== undefined) out.offset = offset;
  if (cookie !== undefined) out.cookie = cookie;
  if (policy !== undefined) out.policy = decodePolicy(policy);
  if (missingType !== undefined) out.missingType = missingType;
  if (missingNest !== undefined) out.missingNest = missingNest;
  return out;
}

/** A decoded NLMSG_ERROR: an ACK when `error` is 0. */
export interface NlmsgErr {
  /** 0 or a negative errno, as the kernel wrote it. */
  readonly error: number;
  /** The header of the request this answers. */
  readonly request: NlMsgHeader & { readonly length: number };
  /** The request's payload, when the kernel echoed it (not NLM_F_CAPPED). */
  readonly requestPayload?: Uint8Array;
  readonly extack: Extack;
}

const NLMSGERR_LEN = 4 + NLMSG_HDRLEN;

export function decodeNlmsgErr(msg: NlMessage): NlmsgErr {
  if (msg.type !== NLMSG_ERROR) throw new NetlinkFormatError(`message type ${msg.type} is not NLMSG_ERROR`);
  if (msg.payload.length < NLMSGERR_LEN) {
    throw new NetlinkFormatError(`NLMSG_ERROR of ${msg.payload.length} bytes is shorter than struct nlmsgerr (${NLMSGERR_LEN})`);
  }
  const error = viewOf(msg.payload).getInt32(0, HOST_LITTLE_ENDIAN);
  if (error > 0) throw new NetlinkFormatError(`NLMSG_ERROR carries a positive error ${error}`);
  const request = decodeNlmsgHeader(msg.payload, 4);
  let tlvStart = NLMSGERR_LEN;
  let requestPayload: Uint8Array | undefined;
  if ((msg.flags & NLM_F_CAPPED) === 0) {
    if (request.length < NLMSG_HDRLEN) {
      throw new NetlinkFormatError(`NLMSG_ERROR echoes a request with nlmsg_len ${request.length}`);
    }
    const echoed = request.length - NLMSG_HDRLEN;
    if (echoed > msg.payload.length - NLMSGERR_LEN) {
      throw new NetlinkFormatError(`NLMSG_ERROR echoes ${echoed} request bytes but carries ${msg.payload.length - NLMSGERR_LEN}`);
    }
    requestPayload = msg.payload.subarray(NLMSGERR_LEN, NLMSGERR_LEN + echoed);
    tlvStart += align4(echoed);
  }
  const extack = (msg.flags & NLM_F_ACK_TLVS) !== 0 && tlvStart < msg.payload.length
    ? decodeExtack(msg.payload.subarray(tlvStart))
    : {};
  return requestPayload === undefined ? { error, request, extack } : { error, request, requestPayload, extack };
}

/** A dump's NLMSG_DONE: s32 error (0 or -errno), then extack TLVs if NLM_F_ACK_TLVS. */
export function decodeDone(msg: NlMessage): { readonly error: number; readonly extack: Extack } {
  if (msg.type !== NLMSG_DONE) throw new NetlinkFormatError(`message type ${msg.type} is not NLMSG_DONE`);
  if (msg.payload.length < 4) throw new NetlinkFormatError(`NLMSG_DONE of ${msg.payload.length} bytes has no error code`);
  const error = viewOf(msg.payload).getInt32(0, HOST_LITTLE_ENDIAN);
  if (error > 0) throw new NetlinkFormatError(`NLMSG_DONE carries a positive error ${error}`);
  const extack = (msg.flags & NLM_F_ACK_TLVS) !== 0 && msg.payload.length > 4 ? decodeExtack(msg.payload.subarray(4)) : {};
  return { error, extack };
}
