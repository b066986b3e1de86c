/**
 * Typed loader for the native addon (build/Release/vhsm_netlink.node) and
 * the interface of its socket class, so tests can inject a fake socket.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An error from a socket call, shaped like Node core's system errors. */
export interface NativeSocketError extends Error {
  /** 'ENOBUFS', 'EAGAIN', ... */
  readonly code: string;
  /** Negative errno, as in Node core (-105 for ENOBUFS). */
  readonly errno: number;
  readonly syscall: string;
}

/**
 * Called once per received datagram with (null, bytes, sender port id; 0 is
 * the kernel), or with an error: ENOBUFS when the kernel dropped messages for
 * this socket (not fatal), EMSGSIZE for a datagram too large to receive.
 */
export type DatagramCallback = (error: NativeSocketError | null, datagram?: Uint8Array, senderPortId?: number) => void;

/** One AF_NETLINK socket (SOCK_RAW, non-blocking, close-on-exec). */
export interface NativeNetlinkSocket {
  /** Binds (to multicast `groups`, a bitmask; default none) and returns the kernel-assigned port id. */
  bind(groups?: number): number;
  /** Requests a receive buffer of `bytes`; returns the size the kernel reports (about twice that). */
  setRecvBuffer(bytes: number): number;
  setExtAck(on: boolean): void;
  setStrictCheck(on: boolean): void;
  setCapAck(on: boolean): void;
  /** NETLINK_NO_ENOBUFS: an overrun refuses that message only, without latching congestion or ENOBUFS. */
  setNoEnobufs(on: boolean): void;
  /** Sends one datagram to the kernel; returns the bytes sent or throws a NativeSocketError. */
  send(bytes: Uint8Array): number;
  /** Starts delivering datagrams to `callback`; while started the socket is kept alive. */
  start(callback: DatagramCallback): void;
  stop(): void;
  /** Idempotent. */
  close(): void;
  /** Whether a started socket keeps the event loop alive (it does by default). */
  ref(): void;
  unref(): void;
  readonly closed: boolean;
}

export type NetlinkSocketFactory = (protocol: number) => NativeNetlinkSocket;

interface NativeModule {
  readonly NetlinkSocket: new (protocol: number, netnsFd?: number) => NativeNetlinkSocket;
}

export const ADDON_RELATIVE_PATH = join('build', 'Release', 'vhsm_netlink.node');

/** The package root: the nearest directory above this file with a package.json (works from dist/netlink/ too). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Where the addon is loaded from; VHSM_NETLINK_ADDON overrides. */
export function addonPath(): string {
  return process.env.VHSM_NETLINK_ADDON ?? join(packageRoot(), ADDON_RELATIVE_PATH);
}

let loaded: NativeModule | undefined;

export function loadNetlinkAddon(): NativeModule {
  if (!loaded) {
    const path = addonPath();
    if (!existsSync(path)) throw new Error(`netlink addon not built: ${path} is missing (run npm run build:addon)`);
    loaded = createRequire(import.meta.url)(path) as NativeModule;
  }
  return loaded;
}

/** Opens a real socket through the addon. */
export const createNativeSocket: NetlinkSocketFactory = (protocol) => new (loadNetlinkAddon().NetlinkSocket)(protocol);

/**
 * A factory whose sockets live in the network namespace at `netnsPath`
 * (e.g. /run/netns/NAME): the kernel then stamps requests as coming from
 * that container. Needs CAP_SYS_ADMIN; used by tests that play several
 * containers from one process.
 */
export function socketFactoryInNetns(netnsPath: string): NetlinkSocketFactory {
  return (protocol) => {
    const fd = openSync(netnsPath, 'r');
    try {
      return new (loadNetlinkAddon().NetlinkSocket)(protocol, fd);
    } finally {
      closeSync(fd);
    }
  };
}

export function isNativeSocketError(value: unknown): value is NativeSocketError {
  return value instanceof Error && typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { errno?: unknown }).errno === 'number';
}
