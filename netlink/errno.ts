/**
 * errno numbers <-> names, in one place. Node's os.constants.errno maps
 * name -> number for this platform; inverting it gives the names the kernel
 * means. Where two names share a number, the kernel's own name wins.
 */
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const PREFERRED: Readonly<Record<string, true>> = { EAGAIN: true, EOPNOTSUPP: true, EDEADLK: true };

const nameByNumber = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!nameByNumber.has(value) || PREFERRED[name]) nameByNumber.set(value, name);
}

/** 'EACCES' for 13; 'E<n>' for a number this platform does not name. */
export function errnoName(errno: number): string {
  return nameByNumber.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** 13 for 'EACCES'; undefined for an unknown name. */
export function errnoNumber(name: string): number | undefined {
  return (constants.errno as Readonly<Record<string, number>>)[name];
}

/** A short description ('permission denied'), or the name when libuv has none. */
export function errnoDescription(errno: number): string {
  return getSystemErrorMap().get(-Math.abs(errno))?.[1] ?? errnoName(errno);
}
