/**
 * Keys follow a container between hosts (issue 12): two VMs — two kernels,
 * two vhsm_transport.ko, two vhsm-servers — on a private QEMU link
 * (192.0.2.0/24, nothing else on it), sharing one PostgreSQL on host 1.
 * Container app1 (CTID 101) makes and uses a P-256 key on host 1, then is
 * bound with the same CTID on host 2 and signs with the same key there; both
 * signatures verify with openssl against the public key host 1 exported.
 *
 * Runs on the host (scripts/test.mjs, after the per-kernel VM runs, which
 * build the modules it boots with); the guests run dist/test/vm-pair/guest.js.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What this test uses of vm/vm.mjs (plain JS, outside the TypeScript build). */
interface VmResult {
  readonly status: number | null;
  readonly output: string;
  readonly problems: readonly string[];
  readonly seconds: number;
  readonly outDir: string;
}
interface VmLib {
  defaultKernel(): string;
  installedKernels(): string[];
  runInVm(options: Record<string, unknown>): Promise<VmResult>;
}
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { defaultKernel, installedKernels, runInVm } = (await import(pathToFileURL(join(repoRoot, 'vm', 'vm.mjs')).href)) as VmLib;

// scripts/test.mjs names the kernels it built modules for; alone, 6.1 and 6.12.
const kernels = process.env.VHSM_PAIR_KERNELS?.split(',').filter(Boolean) ?? [];
const host1Kernel = kernels[0] ?? defaultKernel();
const host2Kernel = kernels[1] ?? (kernels.length ? host1Kernel : installedKernels().find((k) => k.startsWith('6.12.')) ?? host1Kernel);
const moduleFor = (kver: string): string => join(repoRoot, '.vm', 'modules', kver, 'vhsm_transport.ko');

const pair = mkdtempSync('/var/tmp/vhsm-pair-');
const socket = join(pair, 'link.sock');
const shared = join(pair, 'shared');
execFileSync('mkdir', ['-m', '0700', shared]);
t.teardown(() => rmSync(pair, { recursive: true, force: true }));
// The database password the two guests share: a 0600 file, never argv.
writeFileSync(join(shared, 'pg-password'), `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });

// Two emulated VMs share the machine's two cores: minutes, not tap's default 30 s.
t.test('a container moves from host 1 to host 2 and signs with the same key', { timeout: 1_800_000 }, async (t) => {
  for (const k of [host1Kernel, host2Kernel]) t.ok(existsSync(moduleFor(k)), `module built for ${k}`);
  const guest = (role: string, kernel: string, listen: boolean, mac: string) =>
    runInVm({
      kernel,
      command: `node dist/test/vm-pair/guest.js ${role}`,
      env: { VHSM_MODULE: moduleFor(kernel) },
      nic: { socket, listen, mac },
      shares: [{ path: shared, tag: 'pair', at: '/tmp/vhsm-pair' }],
      timeoutSec: 1200,
    });
  const host1 = guest('host1', host1Kernel, true, '52:54:00:c0:02:01');
  // host 2's QEMU connects to the link host 1's QEMU listens on.
  for (let i = 0; i < 300 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
  const host2 = guest('host2', host2Kernel, false, '52:54:00:c0:02:02');
  const [r1, r2] = await Promise.all([host1, host2]);
  for (const [name, r] of [['host 1', r1], ['host 2', r2]] as const) {
    t.equal(r.status, 0, `${name} (${name === 'host 1' ? host1Kernel : host2Kernel}) finished: ${r.output.slice(-2000)}`);
    t.same(r.problems, [], `${name}: kernel log clean`);
    t.comment(`${name}: ${r.seconds.toFixed(0)} s in the VM`);
  }
  const file = (r: { outDir: string }, name: string): string => join(r.outDir, name);
  const pem = file(r1, 'host1.pub.pem');
  t.ok(existsSync(pem) && existsSync(file(r2, 'host2.pub.pem')), 'both hosts exported the public key');
  if (!existsSync(pem) || !existsSync(file(r2, 'host2.pub.pem'))) return;
  t.equal(readFileSync(file(r2, 'host2.pub.pem'), 'utf8'), readFileSync(pem, 'utf8'), 'host 2 has the very key host 1 made');
  const message = join(pair, 'msg');
  writeFileSync(message, 'VHSM: the same key on another host, 2026-12-04\n');
  for (const [name, r, sig] of [['host 1', r1, 'host1.sig'], ['host 2', r2, 'host2.sig']] as const) {
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', pem, '-signature', file(r, sig), message], { encoding: 'utf8' });
    t.match(out, /Verified OK/, `openssl verifies the signature made on ${name}`);
  }
  const audit = JSON.parse(readFileSync(file(r1, 'audit.json'), 'utf8')) as { ok: boolean; chains: { chain: string; headSeq: number }[] };
  t.ok(audit.ok, 'vhsm-admin audit verify: every chain intact');
  const rows = (chain: string): number => audit.chains.find((c) => c.chain === chain)?.headSeq ?? 0;
  t.ok(rows('host1') > 0 && rows('host2') > 0, `each server wrote its own chain (host1 ${rows('host1')}, host2 ${rows('host2')} rows)`);
  writeFileSync(message, 'VHSM: the same key on another host, 2026-12-05\n');
  t.throws(
    () => execFileSync('openssl', ['dgst', '-sha256', '-verify', pem, '-signature', file(r2, 'host2.sig'), message], { stdio: 'pipe' }),
    'and rejects it for another message',
  );
});
