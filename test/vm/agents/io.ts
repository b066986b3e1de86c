/** JSON-lines plumbing shared by the VM test agents. */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { VHSM_PAYLOAD_MAX } from '../../../netlink/vhsm-uapi.js';

export function emit(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
}

export function onCommand(handler: (command: Record<string, unknown>) => Promise<void> | void): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    Promise.resolve()
      .then(() => handler(JSON.parse(line) as Record<string, unknown>))
      .catch((err: unknown) => emit({ type: 'fatal', error: String((err as Error)?.stack ?? err) }));
  });
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : String(err);
}

/** Echo reply layout: ctid u32, pid u32, uid u32, gid u32, netns cookie u64, then the request payload. */
export const ECHO_HEADER = 24;

/** What the echo server sends back after the header: the payload, or its SHA-256 when both would not fit in one reply. */
export function echoBody(payload: Uint8Array, sha256: (p: Uint8Array) => Uint8Array): Uint8Array {
  return ECHO_HEADER + payload.length <= VHSM_PAYLOAD_MAX ? payload : sha256(payload);
}

/**
 * This process's PIDs from the pid namespace of /proc (the VM's, as agents
 * never remount it) down to its own: /proc/self/status NSpid.
 */
export function nsPids(): number[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
  if (!line) throw new Error('no NSpid in /proc/self/status');
  return line.slice('NSpid:'.length).trim().split(/\s+/).map(Number);
}

/**
 * The PID the kernel stamps for this process: as its container's pid
 * namespace sees it, VHSM_PID_LEVEL levels below /proc's (default 0: a
 * container bound by its netns alone counts PIDs as the host does).
 */
export function stampedPid(): number {
  const pids = nsPids();
  const pid = pids[Number(process.env.VHSM_PID_LEVEL ?? 0)];
  if (pid === undefined) throw new Error(`VHSM_PID_LEVEL beyond NSpid ${pids.join(' ')}`);
  return pid;
}
