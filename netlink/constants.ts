/**
 * Netlink and generic netlink constants from the kernel's uAPI headers
 * (linux/netlink.h, linux/genetlink.h), the subset this project speaks.
 */

/** Netlink protocol of generic netlink sockets. */
export const NETLINK_GENERIC = 16;

/** struct nlmsghdr is 16 bytes; struct nlattr 4; struct genlmsghdr 4. */
export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const GENL_HDRLEN = 4;

/** Netlink aligns messages and attributes to 4 bytes. */
export const NLMSG_ALIGNTO = 4;
export const NLA_ALIGNTO = 4;

// Control message types (nlmsg_type below NLMSG_MIN_TYPE).
export const NLMSG_NOOP = 0x1;
export const NLMSG_ERROR = 0x2;
export const NLMSG_DONE = 0x3;
export const NLMSG_OVERRUN = 0x4;
export const NLMSG_MIN_TYPE = 0x10;

// nlmsg_flags.
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
// Modifiers of GET requests.
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_ATOMIC = 0x400;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
// Flags of NLMSG_ERROR acknowledgements.
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

// nla_type bits.
export const NLA_F_NESTED = 1 << 15;
export const NLA_F_NET_BYTEORDER = 1 << 14;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

// Extended ack TLVs after an NLMSG_ERROR (enum nlmsgerr_attrs).
export const NLMSGERR_ATTR_UNUSED = 0;
export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;
export const NLMSGERR_ATTR_COOKIE = 3;
export const NLMSGERR_ATTR_POLICY = 4;
export const NLMSGERR_ATTR_MISS_TYPE = 5;
export const NLMSGERR_ATTR_MISS_NEST = 6;

// Policy description inside NLMSGERR_ATTR_POLICY (enum netlink_policy_type_attr).
export const NL_POLICY_TYPE_ATTR_TYPE = 1;
export const NL_POLICY_TYPE_ATTR_MIN_VALUE_S = 2;
export const NL_POLICY_TYPE_ATTR_MAX_VALUE_S = 3;
export const NL_POLICY_TYPE_ATTR_MIN_VALUE_U = 4;
export const NL_POLICY_TYPE_ATTR_MAX_VALUE_U = 5;
export const NL_POLICY_TYPE_ATTR_MIN_LENGTH = 6;
export const NL_POLICY_TYPE_ATTR_MAX_LENGTH = 7;
export const NL_POLICY_TYPE_ATTR_POLICY_IDX = 8;
export const NL_POLICY_TYPE_ATTR_POLICY_MAXTYPE = 9;
export const NL_POLICY_TYPE_ATTR_BITFIELD32_MASK = 10;
export const NL_POLICY_TYPE_ATTR_MASK = 12;

/** enum netlink_attribute_type, indexed by value. */
export const NL_ATTR_TYPE_NAMES: readonly string[] = [
  'invalid', 'flag', 'u8', 'u16', 'u32', 'u64', 's8', 's16', 's32', 's64',
  'binary', 'string', 'nul-string', 'nested', 'nested-array', 'bitfield32', 'sint', 'uint',
];

// Generic netlink controller ("nlctrl").
export const GENL_ID_CTRL = NLMSG_MIN_TYPE;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_VERSION = 2;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

// Socket options at SOL_NETLINK.
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
