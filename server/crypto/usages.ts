/**
 * Key usages as a bit mask (bit = 1 << KeyUsage), the form stored in the
 * DB and bound into each key's AAD.
 */
import { KEY_USAGES } from '../../proto/index.js';

export type UsageMask = number;

export const Usage = KEY_USAGES;

export function maskOf(usages: Iterable<number>): UsageMask {
  let mask = 0;
  for (const usage of usages) mask |= 1 << usage;
  return mask;
}

export function usagesOf(mask: UsageMask): number[] {
  const out: number[] = [];
  for (const usage of Object.values(KEY_USAGES)) if (mask & (1 << usage)) out.push(usage);
  return out.sort((a, b) => a - b);
}

export function allows(mask: UsageMask, usage: number): boolean {
  return (mask & (1 << usage)) !== 0;
}
