/** Loading and unloading vhsm_transport.ko inside the test VM. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const modulePath = process.env.VHSM_MODULE ?? 'kernel/vhsm_transport.ko';
const sysParams = '/sys/module/vhsm_transport/parameters';

export type ModuleParams = Record<string, string | number | boolean>;

export function moduleLoaded(): boolean {
  return existsSync('/sys/module/vhsm_transport');
}

export function loadModule(params: ModuleParams = {}): void {
  if (moduleLoaded()) unloadModule();
  const args = Object.entries(params).map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 1 : 0) : v}`);
  execFileSync('insmod', [modulePath, ...args], { stdio: 'pipe' });
}

/** rmmod; throws with the kernel's reason if the module refuses to go. */
export function unloadModule(): void {
  if (moduleLoaded()) execFileSync('rmmod', ['vhsm_transport'], { stdio: 'pipe' });
}

export function setParam(name: string, value: string | number | boolean): void {
  writeFileSync(`${sysParams}/${name}`, typeof value === 'boolean' ? (value ? '1' : '0') : String(value));
}

export function getParam(name: string): string {
  return readFileSync(`${sysParams}/${name}`, 'utf8').trim();
}

/** Kernel log lines since `mark` (a line count from dmesgLines()). */
export function dmesgLines(): string[] {
  return execFileSync('dmesg', { encoding: 'utf8' }).split('\n');
}
