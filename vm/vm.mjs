#!/usr/bin/env node
// Boots a Debian kernel under QEMU (TCG: this host has no KVM) with the host
// root mounted read-only over 9p, runs one shell command inside, and brings
// back its exit status, its output and the kernel log.
//
//   node vm/vm.mjs [--kernel KVER] [--timeout SEC] -- COMMAND...
//
// Library: import { runInVm, kernelLogProblems, defaultKernel } from './vm.mjs'
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..');
const cacheDir = join(repoRoot, '.vm');

/** Kernel log lines that fail a run: any of these means the kernel is unhappy. */
const KERNEL_PROBLEM = /\b(WARNING:|BUG:|Oops|KASAN|UBSAN|refcount_t|general protection fault|Call Trace|kernel BUG|list_(add|del) corruption|use-after-free|double-free|INFO: task .* blocked|soft lockup|hard LOCKUP|RCU stall|unreferenced object)/;

/** Debian kernels installed on this host that can boot the VM, newest first. */
export function installedKernels() {
  if (!existsSync('/lib/modules')) return [];
  return readdirSync('/lib/modules')
    .filter((v) => existsSync(`/boot/vmlinuz-${v}`) && existsSync(`/lib/modules/${v}/kernel/fs/9p`))
    .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
}

/** The 6.1 kernel is the reference (Debian 12's default); fall back to any. */
export function defaultKernel() {
  const all = installedKernels();
  return all.find((v) => v.startsWith('6.1.')) ?? all[0];
}

function ensureInitramfs(kver) {
  mkdirSync(cacheDir, { recursive: true });
  const out = join(cacheDir, `initramfs-${kver}.cpio.gz`);
  const inputs = [join(here, 'init'), join(here, 'build-initramfs.sh')];
  const fresh = existsSync(out) && inputs.every((f) => statSync(f).mtimeMs <= statSync(out).mtimeMs);
  if (!fresh) execFileSync('sh', [join(here, 'build-initramfs.sh'), kver, out], { stdio: 'inherit' });
  return out;
}

/** CPU-mitigation notices say "WARNING:" too, but describe the (emulated) CPU, not a kernel bug. */
const KERNEL_NOTICE = /Speculative Return Stack Overflow|Spectre|MDS:|MMIO Stale Data|RETBleed|GDS:|TAA:/;

/** Lines of the kernel log that indicate a bug, a warning or a leak. */
export function kernelLogProblems(dmesg) {
  return dmesg.split('\n').filter((line) => KERNEL_PROBLEM.test(line) && !KERNEL_NOTICE.test(line));
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs `command` (a shell command line) as root in a fresh VM.
 * Resolves { status, output, dmesg, problems, seconds, outDir }; status is
 * null when the guest never reported one (boot failure or timeout).
 *
 * `nic: { socket, listen, mac }` gives the guest one virtio NIC (eth0, driver
 * loaded, link up, no address) on a QEMU stream netdev over a Unix socket:
 * the VM with `listen` creates it, a second VM connects to it — a private
 * two-host Ethernet with nothing else on it. `shares: [{ path, tag, at }]`
 * mounts more host directories read-write at `at` (uncached, so two VMs see
 * each other's writes).
 */
export async function runInVm({
  command,
  kernel = defaultKernel(),
  cwd = repoRoot,
  env = {},
  timeoutSec = 1800,
  memoryMiB = 2048,
  cpus = 2,
  nic,
  shares = [],
  onOutput,
  onBootProgress,
} = {}) {
  if (!kernel) throw new Error('no bootable Debian kernel installed (apt-get install linux-image-amd64)');
  if (!existsSync('/usr/bin/qemu-system-x86_64')) throw new Error('qemu-system-x86 is not installed');
  const initrd = ensureInitramfs(kernel);
  const runId = `${Date.now()}-${process.pid}`;
  const outDir = join(cacheDir, 'runs', runId);
  mkdirSync(outDir, { recursive: true });

  // The guest mounts tmpfs on /tmp and /run, hiding whatever the host keeps
  // there: a checkout under them (CI clones into /tmp) gets its own share.
  const shadowed = /^\/(tmp|run)(\/|$)/.test(cwd);
  const exports = Object.entries({ VHSM_IN_VM: '1', VHSM_KERNEL: kernel, ...env })
    .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
    .join('\n');
  // The job runs as PID 1 after switch_root; it must power off itself.
  writeFileSync(
    join(outDir, 'job.sh'),
    `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LANG=C.UTF-8 TMPDIR=/tmp
${exports}
mount -t devpts devpts /dev/pts -o mode=620 2>/dev/null
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
ip link set lo up
${shadowed ? `mkdir -p ${shellQuote(cwd)} && mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 repo ${shellQuote(cwd)}` : ''}
${shares.map((sh) => `mkdir -p ${shellQuote(sh.at)} && mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 ${sh.tag} ${shellQuote(sh.at)}`).join('\n')}
${nic ? 'modprobe virtio_net && ip link set eth0 up' : ''}
echo booted > /tmp/vhsm-out/booted
cd ${shellQuote(cwd)} && ( ${command} ) > /tmp/vhsm-out/output.log 2>&1
echo $? > /tmp/vhsm-out/status
dmesg > /tmp/vhsm-out/dmesg.txt
sync
/bin/busybox poweroff -f
`,
  );

  const args = [
    '-accel', 'tcg,thread=multi', '-cpu', 'max', '-m', String(memoryMiB), '-smp', String(cpus),
    '-nographic', '-no-reboot', '-monitor', 'none',
    '-kernel', `/boot/vmlinuz-${kernel}`, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 oops=panic',
    '-virtfs', 'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${outDir},mount_tag=out,security_model=none,multidevs=remap`,
    ...(shadowed ? ['-virtfs', `local,path=${cwd},mount_tag=repo,security_model=none,readonly=on,multidevs=remap`] : []),
    ...shares.flatMap((sh) => ['-virtfs', `local,path=${sh.path},mount_tag=${sh.tag},security_model=none,multidevs=remap`]),
    ...(nic
      ? ['-netdev', `stream,id=n0,server=${nic.listen ? 'on' : 'off'},addr.type=unix,addr.path=${nic.socket}`,
         '-device', `virtio-net-pci,netdev=n0,mac=${nic.mac}`]
      : ['-nic', 'none']),
  ];
  const started = Date.now();
  const consoleFd = openSync(join(outDir, 'console.log'), 'w');
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', consoleFd, consoleFd] });
  closeSync(consoleFd);

  // Stream the guest's output file as it grows (progress for long runs).
  let shown = 0;
  let booted = false;
  const poll = setInterval(() => {
    if (!booted && existsSync(join(outDir, 'booted'))) {
      booted = true;
      onBootProgress?.('booted', (Date.now() - started) / 1000);
    } else if (!booted) onBootProgress?.('booting', (Date.now() - started) / 1000);
    const file = join(outDir, 'output.log');
    if (onOutput && existsSync(file)) {
      const text = readFileSync(file, 'utf8');
      if (text.length > shown) {
        onOutput(text.slice(shown));
        shown = text.length;
      }
    }
  }, 500);

  const timedOut = await new Promise((resolveExit) => {
    const timer = setTimeout(() => {
      qemu.kill('SIGKILL');
      resolveExit(true);
    }, timeoutSec * 1000);
    qemu.on('exit', () => {
      clearTimeout(timer);
      resolveExit(false);
    });
  });
  clearInterval(poll);

  const read = (name) => (existsSync(join(outDir, name)) ? readFileSync(join(outDir, name), 'utf8') : '');
  const output = read('output.log');
  if (onOutput && output.length > shown) onOutput(output.slice(shown));
  const statusText = read('status').trim();
  const dmesg = read('dmesg.txt');
  return {
    status: statusText === '' ? null : Number(statusText),
    timedOut,
    output,
    dmesg,
    console: read('console.log'),
    problems: kernelLogProblems(dmesg),
    seconds: (Date.now() - started) / 1000,
    outDir,
  };
}

/** Keeps the last few run directories, drops the rest. */
export function pruneRuns(keep = 5) {
  const runs = join(cacheDir, 'runs');
  if (!existsSync(runs)) return;
  const all = readdirSync(runs).sort();
  for (const name of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(runs, name), { recursive: true, force: true });
}

// CLI
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  let kernel = defaultKernel();
  let timeoutSec = 1800;
  while (argv.length && argv[0] !== '--') {
    const flag = argv.shift();
    if (flag === '--kernel') kernel = argv.shift();
    else if (flag === '--timeout') timeoutSec = Number(argv.shift());
    else {
      console.error(`usage: node vm/vm.mjs [--kernel KVER] [--timeout SEC] -- COMMAND...`);
      process.exit(2);
    }
  }
  argv.shift();
  if (argv.length === 0) {
    console.error('vm.mjs: no command given');
    process.exit(2);
  }
  pruneRuns();
  const result = await runInVm({
    command: argv.join(' '),
    kernel,
    timeoutSec,
    onOutput: (s) => process.stdout.write(s),
    onBootProgress: (phase, s) => phase === 'booted' && process.stderr.write(`[vm] ${kernel} booted in ${s.toFixed(1)} s\n`),
  });
  process.stderr.write(`[vm] status=${result.status} time=${result.seconds.toFixed(1)} s logs=${result.outDir}\n`);
  for (const line of result.problems) process.stderr.write(`[vm] kernel log: ${line}\n`);
  process.exit(result.status === null ? 124 : result.problems.length ? 3 : result.status);
}
