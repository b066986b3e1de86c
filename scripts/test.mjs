#!/usr/bin/env node
// The whole test suite: build, host tests, then the kernel tests in a QEMU VM
// (one boot per kernel). Ends with one "N passed, N failed" line; exits
// non-zero on any failure, on any kernel log problem, or if nothing ran.
//
//   npm test                      everything: all VM tests on Debian 12's 6.1 kernel,
//                                 and the kernel-facing ones (transport-*, server-e2e)
//                                 on 6.12 when its image is installed
//   VHSM_TEST_KERNELS=6.1.0-56-amd64   only those kernels
//   npm test -- --host-only       host tests only
//   npm test -- --vm-only         VM tests only
//   npm test -- --no-build        skip the build steps (and --no-setup: the installs)
//   VHSM_VM_TESTS=transport-echo  run only VM test files with that prefix
//   VHSM_VM_VERBOSE=1             print every VM test file's TAP output, not only failures
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { runFiles, formatResult } from './lib/tap-files.mjs';
import { runInVm, installedKernels, defaultKernel, pruneRuns, repoRoot } from '../vm/vm.mjs';

const args = new Set(process.argv.slice(2));
const wantHost = !args.has('--vm-only');
const wantVm = !args.has('--host-only');
const log = (s) => process.stdout.write(`${s}\n`);
const sh = (cmd, argv) => execFileSync(cmd, argv, { cwd: repoRoot, stdio: 'inherit' });

function kernelsToTest() {
  if (process.env.VHSM_TEST_KERNELS) return process.env.VHSM_TEST_KERNELS.split(',');
  const main = defaultKernel();
  const newer = installedKernels().find((k) => k.startsWith('6.12.'));
  return [main, newer].filter(Boolean);
}

/** On the reference kernel everything runs; on the others, what touches the kernel directly. */
function testsFor(kver) {
  if (process.env.VHSM_VM_TESTS) return process.env.VHSM_VM_TESTS;
  return kver === defaultKernel() ? undefined : 'transport-,server-e2e';
}

/** Builds vhsm_transport.ko for one kernel and keeps a copy per kernel. */
function buildModule(kver) {
  sh('make', ['-s', '-C', 'kernel', `KVER=${kver}`]);
  const dir = join(repoRoot, '.vm', 'modules', kver);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(repoRoot, 'kernel', 'vhsm_transport.ko'), join(dir, 'vhsm_transport.ko'));
  return join(dir, 'vhsm_transport.ko');
}

/** Host suites that run a second time with every fixture on PostgreSQL. */
const PG_SUITES = [
  'server-acceptance', 'server-attacks', 'server-malformed', 'server-bruteforce', 'server-lifecycle',
  'server-password-change', 'server-public-objects', 'server-cancel', 'server-wipe', 'server-stale-access', 'server-crash', 'server-durability', 'client-', 'crypto-', 'cli-objects',
];

const totals = { pass: 0, fail: 0, files: 0 };
const failures = [];
function count(r, label) {
  totals.pass += r.pass;
  totals.fail += r.fail;
  totals.files += 1;
  if (r.fail) failures.push(`${label}${r.name}`);
}

if (!args.has('--no-setup')) sh('bash', ['scripts/setup.sh']);
if (!args.has('--no-build')) {
  log('== build');
  sh('npm', ['run', '-s', 'build']);
}

if (wantHost) {
  log('== host tests');
  // One throwaway PostgreSQL cluster for every host test file (test/host/helpers/pg.ts).
  const pgDir = mkdtempSync(join(tmpdir(), 'vhsm-pg-'));
  process.env.VHSM_TEST_PG_URL = execFileSync('bash', ['scripts/pg-cluster.sh', 'start', pgDir], { cwd: repoRoot, encoding: 'utf8' }).trim();
  process.env.VHSM_TEST_PG_DIR = pgDir;
  process.on('exit', () => {
    execFileSync('bash', ['scripts/pg-cluster.sh', 'stop', pgDir], { cwd: repoRoot, stdio: 'ignore' });
    rmSync(pgDir, { recursive: true, force: true });
  });
  const dir = join(repoRoot, 'dist/test/host');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, f)) : [];
  const results = await runFiles(files, {
    concurrency: 2,
    cwd: repoRoot,
    onResult: (r) => {
      log(formatResult(r, '[host] '));
      if (r.fail) log(r.output);
    },
  });
  for (const r of results) count(r, 'host/');

  // The server suites again, on PostgreSQL (test/host/helpers/fixture.ts testBackend()).
  log('== host tests on PostgreSQL');
  const pgFiles = files.filter((f) => PG_SUITES.some((prefix) => basename(f).startsWith(prefix)));
  const pgResults = await runFiles(pgFiles, {
    concurrency: 2,
    cwd: repoRoot,
    env: { VHSM_TEST_BACKEND: 'postgres' },
    onResult: (r) => {
      log(formatResult(r, '[host/pg] '));
      if (r.fail) log(r.output);
    },
  });
  for (const r of pgResults) count(r, 'host/pg/');
}

if (wantVm) {
  const kernels = kernelsToTest();
  if (kernels.length === 0) {
    log('!! no Debian kernel installed: cannot run the kernel tests (apt-get install linux-image-amd64 linux-headers-amd64)');
    totals.fail += 1;
    failures.push('vm/no-kernel');
  }
  pruneRuns(4);
  for (const kver of kernels) {
    log(`== kernel tests on ${kver} (QEMU/TCG)`);
    const module = buildModule(kver);
    const result = await runInVm({
      kernel: kver,
      command: 'node vm/guest-tests.mjs',
      env: {
        VHSM_MODULE: module,
        ...(testsFor(kver) ? { VHSM_VM_TESTS: testsFor(kver) } : {}),
        ...(process.env.VHSM_VM_VERBOSE ? { VHSM_VM_VERBOSE: '1' } : {}),
      },
      timeoutSec: Number(process.env.VHSM_VM_TIMEOUT_SEC ?? 3000),
      onOutput: (s) => process.stdout.write(s),
      onBootProgress: (phase, s) => phase === 'booted' && log(`[vm] booted in ${s.toFixed(1)} s`),
    });
    const resultsFile = join(result.outDir, 'results.json');
    const results = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : [];
    for (const r of results) count(r, `vm(${kver})/`);
    if (result.status !== 0 || results.length === 0) {
      log(`!! VM run on ${kver} did not complete (status ${result.status}${result.timedOut ? ', timed out' : ''}); logs in ${result.outDir}`);
      log(result.console.split('\n').slice(-30).join('\n'));
      totals.fail += 1;
      failures.push(`vm(${kver})/run`);
    }
    if (result.problems.length) {
      log(`!! kernel log on ${kver} shows problems:`);
      for (const line of result.problems) log(`   ${line}`);
      totals.fail += 1;
      failures.push(`vm(${kver})/dmesg`);
    } else {
      log(`[vm] ${kver}: kernel log clean (${result.dmesg.split('\n').length} lines), ${result.seconds.toFixed(0)} s in the VM`);
    }
  }
  // Tests of two VMs at once (two hosts on a private link), driven from here.
  const pairDir = join(repoRoot, 'dist/test/vm-pair');
  const only = process.env.VHSM_VM_TESTS?.split(',');
  const pairFiles = existsSync(pairDir)
    ? readdirSync(pairDir).filter((f) => f.endsWith('.test.js') && (!only || only.some((o) => f.startsWith(o)))).sort().map((f) => join(pairDir, f))
    : [];
  if (kernels.length && pairFiles.length) {
    log(`== two-host tests (${kernels.join(' + ')})`);
    const results = await runFiles(pairFiles, {
      concurrency: 1,
      cwd: repoRoot,
      env: { VHSM_PAIR_KERNELS: kernels.join(',') },
      timeoutMs: 1_800_000,
      onResult: (r) => {
        log(formatResult(r, '[pair] '));
        if (r.fail || process.env.VHSM_VM_VERBOSE) log(r.output);
      },
    });
    for (const r of results) count(r, 'vm-pair/');
  }
}

if (totals.files === 0) {
  log('!! no test files ran');
  totals.fail += 1;
}
if (failures.length) log(`failed: ${failures.join(', ')}`);
log(`total: ${totals.pass} passed, ${totals.fail} failed`);
process.exit(totals.fail ? 1 : 0);
