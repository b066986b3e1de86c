/**
 * Host administration of vhsm_transport.ko (vhsmctl): bind a container's
 * network namespace to a CTID, unbind it, list bindings, read the counters
 * and the registered server. Needs CAP_NET_ADMIN in the initial netns.
 */
import { closeSync, openSync } from 'node:fs';
import { attr, read, type AttrSet } from '../netlink/attributes.js';
import type { NetlinkSocketFactory } from '../netlink/addon.js';
import type { GenlMessage } from '../netlink/genl.js';
import type { GenlSocket } from '../netlink/genl-socket.js';
import {
  VHSM_A_CTID,
  VHSM_A_NETNS_COOKIE,
  VHSM_A_NETNS_FD,
  VHSM_A_NETNS_INO,
  VHSM_A_PENDING,
  VHSM_A_PID,
  VHSM_A_PIDNS_INO,
  VHSM_A_PIDNS_PID,
  VHSM_A_QUEUED_BYTES,
  VHSM_A_SERVER,
  VHSM_A_STATS,
  VHSM_CMD_CT_BIND,
  VHSM_CMD_CT_GET,
  VHSM_CMD_CT_UNBIND,
  VHSM_CMD_STATS_GET,
  VHSM_GENL_VERSION,
  VHSM_SERVER_A_CTID,
  VHSM_SERVER_A_NETNS_COOKIE,
  VHSM_SERVER_A_PID,
  VHSM_SERVER_A_PORTID,
  vhsm_stat,
} from '../netlink/vhsm-uapi.js';
import { TransportError } from './types.js';
import { openVhsmSocket, toTransportError } from './netlink-common.js';

export interface Binding {
  readonly ctid: number;
  readonly netnsCookie: bigint;
  /** For display only: inode numbers are reused. */
  readonly netnsIno: number;
  /** The pid namespace its PIDs are stamped in; for display only. */
  readonly pidnsIno: number;
  /** Requests charged to this container, awaiting a reply or their deadline. */
  readonly pending: number;
  /** Bytes of the server's receive queue charged to this container. */
  readonly queuedBytes: number;
}

export interface ServerInfo {
  readonly ctid: number;
  readonly netnsCookie: bigint;
  /** tgid in the initial pid namespace. */
  readonly pid: number;
  readonly portid: number;
}

export interface Stats {
  /** Counters since load, keyed by the lowercase stat name: requests, forwarded, no_server, ... */
  readonly counters: Readonly<Record<string, bigint>>;
  /** Requests awaiting a reply, all containers. */
  readonly pending: number;
  /** The registered server; absent if none. */
  readonly server?: ServerInfo;
}

/**
 * The container's network namespace: that of process `pid` (as the host
 * sees it), or a netns file. Its PIDs are stamped in the pid namespace of
 * process `pidnsPid` if given, else of `pid`, else in the host's.
 */
export type BindTarget = ({ readonly pid: number } | { readonly netnsPath: string }) & { readonly pidnsPid?: number };

export interface VhsmAdminOptions {
  /** Per-request deadline; default 5000 ms. */
  readonly timeoutMs?: number;
  readonly factory?: NetlinkSocketFactory;
}

/** VHSM_STAT_REQUESTS -> 'requests', ... (UNSPEC, PAD and the MAX markers excluded). */
export const STAT_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(vhsm_stat)
    .filter(([name]) => name.startsWith('VHSM_STAT_') && !['VHSM_STAT_UNSPEC', 'VHSM_STAT_PAD', 'VHSM_STAT_MAX'].includes(name))
    .map(([name, value]) => [value, name.slice('VHSM_STAT_'.length).toLowerCase()]),
);

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new TransportError('EIO', `malformed message from the kernel: missing ${what}`);
  return value;
}

export function decodeBinding(message: GenlMessage): Binding {
  const a = message.attrs;
  return {
    ctid: need(a.u32(VHSM_A_CTID), 'CTID'),
    netnsCookie: need(a.u64(VHSM_A_NETNS_COOKIE), 'NETNS_COOKIE'),
    netnsIno: need(a.u32(VHSM_A_NETNS_INO), 'NETNS_INO'),
    pidnsIno: a.u32(VHSM_A_PIDNS_INO) ?? 0,
    pending: a.u32(VHSM_A_PENDING) ?? 0,
    queuedBytes: a.u32(VHSM_A_QUEUED_BYTES) ?? 0,
  };
}

function decodeServer(s: AttrSet): ServerInfo {
  return {
    ctid: need(s.u32(VHSM_SERVER_A_CTID), 'SERVER_A_CTID'),
    netnsCookie: need(s.u64(VHSM_SERVER_A_NETNS_COOKIE), 'SERVER_A_NETNS_COOKIE'),
    pid: need(s.u32(VHSM_SERVER_A_PID), 'SERVER_A_PID'),
    portid: need(s.u32(VHSM_SERVER_A_PORTID), 'SERVER_A_PORTID'),
  };
}

export function decodeStats(message: GenlMessage): Stats {
  const a = message.attrs;
  const counters: Record<string, bigint> = {};
  for (const stat of a.nested(VHSM_A_STATS)?.list ?? []) {
    const name = STAT_NAMES.get(stat.type);
    if (name === undefined && stat.type <= vhsm_stat.VHSM_STAT_PAD) continue;
    counters[name ?? `stat_${stat.type}`] = read.u64(stat);
  }
  const server = a.nested(VHSM_A_SERVER);
  const pending = a.u32(VHSM_A_PENDING) ?? 0;
  return server ? { counters, pending, server: decodeServer(server) } : { counters, pending };
}

function checkCtid(ctid: number): void {
  if (!Number.isInteger(ctid) || ctid < 1 || ctid > 0xffff_ffff) throw new TransportError('EINVAL', `EINVAL: CTID must be an integer from 1 to 4294967295, got ${ctid}`);
}

function checkPid(pid: number): void {
  if (!Number.isInteger(pid) || pid < 1 || pid > 0x7fff_ffff) throw new TransportError('EINVAL', `EINVAL: bad pid ${pid}`);
}

export class VhsmAdmin {
  private constructor(
    private readonly socket: GenlSocket,
    private readonly familyId: number,
  ) {}

  static async open(options: VhsmAdminOptions = {}): Promise<VhsmAdmin> {
    const { socket, family } = await openVhsmSocket({
      keepAlive: 'while-pending',
      timeoutMs: options.timeoutMs ?? 5000,
      ...(options.factory ? { factory: options.factory } : {}),
    });
    return new VhsmAdmin(socket, family.id);
  }

  /** Binds a container (see BindTarget) to `ctid`. */
  async bind(ctid: number, target: BindTarget): Promise<void> {
    checkCtid(ctid);
    const pidns = target.pidnsPid === undefined ? [] : [attr.u32(VHSM_A_PIDNS_PID, target.pidnsPid)];
    if (target.pidnsPid !== undefined) checkPid(target.pidnsPid);
    if ('pid' in target) {
      checkPid(target.pid);
      await this.call(VHSM_CMD_CT_BIND, [attr.u32(VHSM_A_CTID, ctid), attr.u32(VHSM_A_PID, target.pid), ...pidns]);
      return;
    }
    let fd: number;
    try {
      fd = openSync(target.netnsPath, 'r');
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new TransportError(e.code === 'ENOENT' ? 'ENOENT' : e.code === 'EACCES' ? 'EACCES' : 'EIO', `${target.netnsPath}: ${e.message}`);
    }
    try {
      // The kernel resolves the fd during the send, so it can be closed right after.
      await this.call(VHSM_CMD_CT_BIND, [attr.u32(VHSM_A_CTID, ctid), attr.u32(VHSM_A_NETNS_FD, fd), ...pidns]);
    } finally {
      closeSync(fd);
    }
  }

  async unbind(ctid: number): Promise<void> {
    checkCtid(ctid);
    await this.call(VHSM_CMD_CT_UNBIND, [attr.u32(VHSM_A_CTID, ctid)]);
  }

  async list(): Promise<Binding[]> {
    try {
      const messages = await this.socket.dump(this.familyId, VHSM_CMD_CT_GET, [], { version: VHSM_GENL_VERSION });
      return messages.map(decodeBinding);
    } catch (error) {
      throw toTransportError(error);
    }
  }

  async stats(): Promise<Stats> {
    const [reply] = await this.call(VHSM_CMD_STATS_GET, []);
    try {
      return decodeStats(need(reply, 'STATS_GET reply'));
    } catch (error) {
      throw toTransportError(error);
    }
  }

  async close(): Promise<void> {
    this.socket.close();
  }

  private async call(cmd: number, attrs: Parameters<GenlSocket['request']>[2]): Promise<GenlMessage[]> {
    try {
      return await this.socket.request(this.familyId, cmd, attrs, { expect: 'ack', version: VHSM_GENL_VERSION });
    } catch (error) {
      throw toTransportError(error);
    }
  }
}
