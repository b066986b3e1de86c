/** Generic netlink family resolution through the controller, "nlctrl". */
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_HDRSIZE,
  CTRL_ATTR_MAXATTR,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_ATTR_VERSION,
  CTRL_CMD_GETFAMILY,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
} from './constants.js';
import { AttrSet, attr, required } from './attributes.js';
import { NetlinkFormatError } from './bytes.js';
import type { GenlMessage } from './genl.js';
import type { GenlSocket } from './genl-socket.js';

export interface GenlFamily {
  /** The nlmsg_type to address the family with. */
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly hdrSize: number;
  readonly maxAttr: number;
  /** Multicast group name -> group id. */
  readonly mcastGroups: ReadonlyMap<string, number>;
}

/** Reads a CTRL_CMD_NEWFAMILY message (the answer to GETFAMILY). */
export function decodeFamily(message: GenlMessage): GenlFamily {
  if (message.cmd !== CTRL_CMD_NEWFAMILY) throw new NetlinkFormatError(`nlctrl answered with command ${message.cmd}, expected NEWFAMILY`);
  const a = message.attrs;
  const mcastGroups = new Map<string, number>();
  for (const group of a.nested(CTRL_ATTR_MCAST_GROUPS)?.list ?? []) {
    const g = AttrSet.decode(group.payload);
    mcastGroups.set(required(g.string(CTRL_ATTR_MCAST_GRP_NAME), 'CTRL_ATTR_MCAST_GRP_NAME'), required(g.u32(CTRL_ATTR_MCAST_GRP_ID), 'CTRL_ATTR_MCAST_GRP_ID'));
  }
  return {
    id: required(a.u16(CTRL_ATTR_FAMILY_ID), 'CTRL_ATTR_FAMILY_ID'),
    name: required(a.string(CTRL_ATTR_FAMILY_NAME), 'CTRL_ATTR_FAMILY_NAME'),
    version: a.u32(CTRL_ATTR_VERSION) ?? 0,
    hdrSize: a.u32(CTRL_ATTR_HDRSIZE) ?? 0,
    maxAttr: a.u32(CTRL_ATTR_MAXATTR) ?? 0,
    mcastGroups,
  };
}

/**
 * Family id, version and multicast groups by name. A family that is not
 * registered rejects with NetlinkError code 'ENOENT'.
 */
export async function resolveFamily(socket: GenlSocket, name: string, options: { readonly timeoutMs?: number } = {}): Promise<GenlFamily> {
  const replies = await socket.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, [attr.string(CTRL_ATTR_FAMILY_NAME, name)], {
    expect: 'reply',
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  const family = decodeFamily(required(replies[0], 'nlctrl reply'));
  if (family.name !== name) throw new NetlinkFormatError(`nlctrl answered for family "${family.name}", asked for "${name}"`);
  return family;
}
