#!/usr/bin/env node
// npm run bench: how fast VHSM is, how far from its crypto, and against
// SoftHSM2, all measured in one run (the machine is shared and noisy, so
// only ratios within a run mean anything). docs/benchmarks.md explains every
// number.
//
//   npm run bench                      build, then every section (~11 min)
//   npm run bench -- --no-build        skip `npm run build`
//   npm run bench -- --quick           shorter windows (a smoke run, ~3 min)
//   npm run bench -- --only=host,pg-locks,vm,fairness,memory   some sections
//   npm run bench -- --profile         also CPU-profile the VHSM sign path and summarise
//                                      (--only=profile: just that)
//   npm run bench -- --out=FILE        results file (default bench-results.json)
//   npm run bench -- --only=vm --vm-parts=pkcs11   some parts of the VM section
//                                      (echo, sign, pkcs11)
//
// Sections run as child processes (dist/bench/*.js) that print JSON lines:
// progress for the status line, results for the table and the JSON file.
// The VM section boots Debian's kernel under QEMU once (vm/vm.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultKernel, repoRoot, runInVm } from '../vm/vm.mjs';

// ---- options ----
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const value = (name, fallback) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ALL_SECTIONS = ['host', 'pg-locks', 'vm', 'fairness', 'memory'];
const KNOWN_SECTIONS = [...ALL_SECTIONS, 'profile'];
const sections = value('only', ALL_SECTIONS.join(',')).split(',').filter(Boolean);
if (flag('profile') && !sections.includes('profile')) sections.push('profile');
for (const s of sections) if (!KNOWN_SECTIONS.includes(s)) fail(`unknown section ${s} (choose from ${KNOWN_SECTIONS.join(', ')})`);
const quick = flag('quick');
const vmParts = value('vm-parts', 'echo,sign,pkcs11').split(',').filter(Boolean);
const outFile = resolve(repoRoot, value('out', 'bench-results.json'));
const started = Date.now();

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}

// ---- status line ----
const tty = process.stderr.isTTY;
let statusShown = false;
function elapsed() {
  const s = Math.round((Date.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
function status(text) {
  const line = `[bench ${elapsed()}] ${text}`;
  if (tty) {
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns || 120) - 1)}`);
    statusShown = true;
  } else process.stderr.write(`${line}\n`);
}
function say(text) {
  if (statusShown) {
    process.stderr.write('\r\x1b[K');
    statusShown = false;
  }
  process.stdout.write(`${text}\n`);
}

// ---- build ----
const sh = (cmd, args, options = {}) => execFileSync(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], ...options });
if (!flag('no-build')) {
  status('building (npm run build)');
  try {
    sh('npm', ['run', '-s', 'build']);
  } catch (error) {
    fail(`npm run build failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
  }
}
if (!existsSync(join(repoRoot, 'dist/bench/host.js'))) fail('dist/bench is missing: run without --no-build');

// ---- SoftHSM2: installed on demand, driven by a small C program ----
const SOFTHSM_LIBS = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'];
const PKCS11_INCLUDE = '/usr/include/p11-kit-1';
const softhsmLib = () => SOFTHSM_LIBS.find((p) => existsSync(p));
const P11KIT_CLIENT = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';
const haveTools = () =>
  softhsmLib() && existsSync('/usr/bin/softhsm2-util') && existsSync(join(PKCS11_INCLUDE, 'p11-kit/pkcs11.h')) && existsSync('/usr/bin/p11-kit') && existsSync(P11KIT_CLIENT);

function prepareSoftHsm() {
  if (!haveTools()) {
    if (process.getuid?.() !== 0) {
      say('!! SoftHSM2 is not installed and this is not root: the SoftHSM column will be n/a (apt-get install softhsm2 libp11-kit-dev)');
      return { setup: null, reason: 'softhsm2 not installed (not root)' };
    }
    status('installing softhsm2 and libp11-kit-dev (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => sh('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'softhsm2', 'libp11-kit-dev', 'p11-kit', 'p11-kit-modules'], { env });
    try {
      install();
    } catch {
      try {
        sh('apt-get', ['update', '-q'], { env });
        install();
      } catch (error) {
        say(`!! could not install softhsm2: ${String(error.stderr ?? error.message).trim().split('\n').pop()}; SoftHSM column n/a`);
        return { setup: null, reason: 'apt-get install softhsm2 failed' };
      }
    }
  }
  const source = join(repoRoot, 'bench/softhsm/softhsm-bench.c');
  const binary = join(repoRoot, 'dist/bench/softhsm-bench');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    status('compiling the SoftHSM driver (cc)');
    try {
      sh('cc', ['-O2', '-Wall', '-pthread', `-I${PKCS11_INCLUDE}`, '-o', binary, source, '-ldl']);
    } catch (error) {
      say(`!! cannot compile bench/softhsm/softhsm-bench.c: ${error.stderr}; SoftHSM column n/a`);
      return { setup: null, reason: 'driver did not compile' };
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'vhsm-bench-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const pin = '12345678';
  sh('softhsm2-util', ['--init-token', '--free', '--label', 'vhsm-bench', '--so-pin', '87654321', '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf } });
  const version = (() => {
    try {
      return execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'softhsm2']).toString();
    } catch {
      return 'unknown';
    }
  })();
  return { setup: { binary, library: softhsmLib(), conf, tokenLabel: 'vhsm-bench', pin }, dir, version };
}

// ---- running a section ----
const results = { host: [], hostSetup: null, pgLocks: [], vm: null, fairness: [], memory: null, profile: [], errors: [] };

function collect(message, sectionName) {
  if (message.type === 'progress') status(message.text);
  else if (message.type === 'error') {
    results.errors.push({ section: message.section ?? sectionName, error: message.error });
    say(`!! ${message.section ?? sectionName} failed:\n${message.error}`);
  } else if (message.type === 'result') {
    const { section, data } = message;
    if (section === 'host') results.host.push(data);
    else if (section === 'host-setup') results.hostSetup = data;
    else if (section === 'pg-locks') results.pgLocks.push(data);
    else if (section === 'fairness') results.fairness.push(data);
    else if (section === 'memory') results.memory = data;
    else if (section === 'vm') results.vm = data;
    else if (section === 'profile') results.profile.push(data);
  }
}

function parseLines(text, sectionName) {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      collect(JSON.parse(line), sectionName);
    } catch {
      // not ours
    }
  }
}

function runSection(sectionName, script, options = {}, nodeFlags = []) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeFlags, join(repoRoot, 'dist/bench', script), JSON.stringify(options)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      buffer += d;
      const cut = buffer.lastIndexOf('\n');
      if (cut >= 0) {
        parseLines(buffer.slice(0, cut), sectionName);
        buffer = buffer.slice(cut + 1);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      parseLines(buffer, sectionName);
      if (code !== 0 && !results.errors.some((e) => e.section === sectionName)) {
        results.errors.push({ section: sectionName, error: `exit ${code}: ${stderr.trim()}` });
        say(`!! ${sectionName} exited with ${code}: ${stderr.trim()}`);
      }
      resolve(code);
    });
  });
}

// ---- the VM ----
function moduleFor(kver) {
  const dir = join(repoRoot, '.vm', 'modules', kver);
  const ko = join(dir, 'vhsm_transport.ko');
  const sources = ['main.c', 'netlink.c', 'pending.c', 'vhsm_transport.h', 'uapi/vhsm.h'].map((f) => join(repoRoot, 'kernel', f)).filter(existsSync);
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (existsSync(ko) && statSync(ko).mtimeMs >= newest) return ko;
  status(`building vhsm_transport.ko for ${kver}`);
  sh('make', ['-s', '-C', 'kernel', `KVER=${kver}`]);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(repoRoot, 'kernel', 'vhsm_transport.ko'), ko);
  return ko;
}

/** The C driver against any module, for the VM's PKCS#11 comparison (null: no SoftHSM2 here). */
let pkcs11Driver = null;

async function runVm() {
  const kver = defaultKernel();
  if (!kver || !existsSync('/usr/bin/qemu-system-x86_64')) {
    results.errors.push({ section: 'vm', error: 'no bootable Debian kernel or no QEMU (bash scripts/setup.sh installs them)' });
    say('!! VM section skipped: no Debian kernel or QEMU (bash scripts/setup.sh)');
    return;
  }
  // No pruneRuns() here: another engineer's VM may be running from an older run directory.
  const ko = moduleFor(kver);
  status(`vm: booting ${kver} under QEMU (TCG)`);
  let seen = '';
  const run = await runInVm({
    kernel: kver,
    command: `node dist/bench/vm/guest.js '${JSON.stringify({ quick, parts: vmParts, pkcs11: pkcs11Driver })}'`,
    env: { VHSM_MODULE: ko },
    timeoutSec: 600,
    onBootProgress: (phase, s) => phase === 'booted' && status(`vm: booted in ${s.toFixed(0)} s`),
    onOutput: (text) => {
      seen += text;
      const cut = seen.lastIndexOf('\n');
      if (cut >= 0) {
        parseLines(seen.slice(0, cut), 'vm');
        seen = seen.slice(cut + 1);
      }
    },
  });
  parseLines(seen, 'vm');
  if (run.status !== 0 || !results.vm) {
    results.errors.push({ section: 'vm', error: `VM run failed (status ${run.status}); logs in ${run.outDir}` });
    say(`!! VM section failed (status ${run.status}${run.timedOut ? ', timed out' : ''}); logs in ${run.outDir}`);
    say(run.output.split('\n').slice(-15).join('\n'));
  }
  if (run.problems.length) {
    results.errors.push({ section: 'vm', error: `kernel log: ${run.problems.join(' | ')}` });
    say(`!! kernel log shows problems: ${run.problems.join(' | ')}`);
  }
  results.vmSeconds = run.seconds;
}

// ---- formatting ----
const fmtRate = (x) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const fmtRatio = (x) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtMs = (x) => (x === undefined || x === null ? 'n/a' : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const OP_NAMES = {
  p256: 'P-256 sign',
  p256sha256: 'P-256 sign (CKM_ECDSA_SHA256)',
  ed25519: 'Ed25519 sign',
  rsa2048: 'RSA-2048 sign (PSS)',
  rsa2048v15: 'RSA-2048 sign (PKCS#1 v1.5)',
  hmac1k: 'HMAC-SHA256 1 KiB',
  aesgcm1k: 'AES-256-GCM 1 KiB enc',
  login: 'login (PBKDF2 600k)',
};

function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ')} |`;
  return [line(headers), `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

function hostTable() {
  const rows = results.host.map((r) => [
    OP_NAMES[r.op] ?? r.op,
    r.clients,
    fmtRate(r.a),
    fmtRate(r.b),
    fmtRate(r.bTmpfs),
    fmtRate(r.bStrict),
    fmtRate(r.c),
    fmtRatio(r.ratioBA),
    fmtRatio(r.ratioBC),
    fmtRatio(r.ratioTmpfsA),
    fmtRatio(r.ratioTmpfsC),
    fmtRatio(r.ratioStrictA),
  ]);
  return table(['operation', 'clients', '(a) node:crypto/s', '(b) VHSM/s', "(b') tmpfs/s", "(b'') fsync each/s", '(c) SoftHSM2/s', 'b/a', 'b/c', "b'/a", "b'/c", "b''/a"], rows);
}

/** Both sides in separate processes: VHSM's clients (bx) against SoftHSM2 behind p11-kit server (d). */
function crossProcessTable() {
  const rows = results.host
    .filter((r) => r.bx !== undefined || r.d !== undefined)
    .map((r) => [OP_NAMES[r.op] ?? r.op, r.clients, fmtRate(r.b), fmtRate(r.bx), fmtRatio(r.ratioBxB), fmtRate(r.d), fmtRatio(r.ratioBxD)]);
  return table(['operation', 'clients', '(b) VHSM in-process/s', '(bx) VHSM, clients in another process/s', 'bx/b', '(d) SoftHSM2 via p11-kit server/s', 'bx/d'], rows);
}

/** One server process and two on one PostgreSQL database, 16 clients in all, one shared key: throughput and lock waits. */
function pgLocksTable() {
  const rows = results.pgLocks.map((r) => [
    r.servers,
    r.clientsPerServer,
    r.perSecond.map(fmtRate).join(' + '),
    fmtRate(r.combinedPerSecond),
    r.p99.map(fmtMs).join(' / '),
    `${(r.lockWaitShare * 100).toFixed(1)} %`,
    `${(r.lwlockWaitShare * 100).toFixed(1)} %`,
    r.samples,
  ]);
  return table(['server processes', 'clients each', 'signatures/s', 'combined/s', 'p99 ms', 'lock waits (share of busy backend samples)', 'LWLock waits', 'samples'], rows);
}

/** The same server on PostgreSQL (issue 12): (b) against (b_pg) with durability 'changes' and (b_pg'') with 'all'. */
function pgTable() {
  const rows = results.host
    .filter((r) => r.bPg !== undefined || r.bPgStrict !== undefined)
    .map((r) => [OP_NAMES[r.op] ?? r.op, r.clients, fmtRate(r.b), fmtMs(r.bP99), fmtRate(r.bPg), fmtMs(r.bPgP99), fmtRatio(r.ratioPgB), fmtRate(r.bPgStrict), fmtRatio(r.ratioPgStrictB)]);
  return table(['operation', 'clients', '(b) SQLite/s', '(b) p99 ms', '(b_pg) PostgreSQL/s', '(b_pg) p99 ms', 'b_pg/b', "(b_pg'') sync commit/s", "b_pg''/b"], rows);
}

function vmTable() {
  const vm = results.vm;
  const rows = vm.echo.map((e) => {
    const s = vm.sign.find((x) => x.clients === e.clients);
    return [e.clients, fmtRate(e.perSecond), fmtMs(e.p50), fmtMs(e.p99), fmtRate(s?.perSecond), fmtMs(s?.p50), fmtMs(s?.p99), fmtRatio(s ? e.p50 / s.p50 : undefined), fmtRatio(s ? s.perSecond / e.perSecond : undefined)];
  });
  return table(['clients (4 containers)', 'echo/s', 'echo p50 ms', 'echo p99 ms', 'sign/s', 'sign p50 ms', 'sign p99 ms', 'echo/sign p50', 'sign/echo tput'], rows);
}

/** The PKCS#11 driver on three modules, ops/s: VHSM, SoftHSM2 in-process, SoftHSM2 behind p11-kit server. */
function pkcs11Table() {
  const rows = [];
  const get = (module, op, clients) => results.vm.pkcs11.find((r) => r.module === module && r.op === op && r.clients === clients);
  for (const op of ['p256', 'p256sha256', 'ed25519', 'rsa2048', 'rsa2048v15', 'hmac1k']) {
    for (const clients of [1, 8]) {
      const v = get('vhsm', op, clients)?.perSecond;
      const p = get('softhsm-p11kit', op, clients)?.perSecond;
      const i = get('softhsm', op, clients)?.perSecond;
      rows.push([op === 'p256' ? 'P-256 sign (CKM_ECDSA, digest)' : OP_NAMES[op], clients, fmtRate(v), fmtRate(p), fmtRate(i), fmtRatio(v && p ? v / p : undefined), fmtRatio(v && i ? v / i : undefined)]);
    }
  }
  return table(['operation', 'threads', 'VHSM/s', 'SoftHSM2 via p11-kit server/s', 'SoftHSM2 in-process/s', 'VHSM / p11-kit', 'VHSM / in-process'], rows);
}

/** The same echo load in 4 containers and in one: the module's cross-container cost. */
function vmPlacementTable() {
  const vm = results.vm;
  const rows = (vm.echoPacked ?? []).map((p) => {
    const s = vm.echo.find((x) => x.clients === p.clients);
    return [p.clients, fmtRate(s?.perSecond), fmtRate(p.perSecond), fmtRatio(s ? s.perSecond / p.perSecond : undefined), fmtMs(s?.p99), fmtMs(p.p99)];
  });
  return table(['echo clients', '4 containers/s', '1 container/s', 'spread/packed', 'p99 4 ct ms', 'p99 1 ct ms'], rows);
}

function fairnessTable() {
  const rows = [];
  for (const f of results.fairness) {
    const name = `${f.label} (${f.medium})`;
    const quietP50 = Math.min(f.quietBefore.p50, f.quietAfter.p50);
    rows.push([name, 'quiet', fmtMs(quietP50), fmtMs(f.quietP99), '1.00', '']);
    rows.push([name, `flood (${f.flood.inFlight} in flight)`, fmtMs(f.flood.p50), fmtMs(f.flood.p99), fmtRatio(f.ratioFloodP99), `flooder ${fmtRate(f.flood.flooderPerSecond)}/s`]);
    rows.push([name, `${f.logins.containers} logins`, fmtMs(f.logins.p50), fmtMs(f.logins.p99), fmtRatio(f.ratioLoginsP99), `${fmtRate(f.logins.loginsPerSecond)} logins/s`]);
  }
  return table(['server config (DB)', 'other containers', 'victim p50 ms', 'victim p99 ms', 'p99 / quiet p99', 'load'], rows);
}

function memoryTable() {
  const m = results.memory;
  return table(
    ['stage', 'RSS MB', 'heap used MB', 'sessions'],
    m.stages.map((s) => [s.stage, s.rssMB.toFixed(1), s.heapUsedMB.toFixed(1), s.sessions]),
  );
}

function targets() {
  const out = [];
  if (results.vm?.pkcs11?.length) {
    const at = (module, op, c) => results.vm.pkcs11.find((r) => r.module === module && r.op === op && r.clients === c)?.perSecond;
    const cells = ['p256', 'ed25519', 'rsa2048', 'rsa2048v15', 'hmac1k'].flatMap((op) => [1, 8].map((c) => {
      const v = at('vhsm', op, c);
      const p = at('softhsm-p11kit', op, c);
      return { op, c, x: v && p ? v / p : undefined };
    }));
    const measured = cells.filter((v) => v.x !== undefined);
    out.push({
      target: 'VHSM >= 1.5x SoftHSM2 behind p11-kit server (PKCS#11, VM), 1 and 8 threads',
      met: measured.length > 0 && measured.every((v) => v.x >= 1.5),
      values: cells.map((v) => `${v.op}×${v.c}: ${fmtRatio(v.x)}`).join(', '),
    });
  }
  const cell = (op, clients) => results.host.find((r) => r.op === op && r.clients === clients);
  if (results.host.length) {
    const bc = ['p256', 'ed25519'].flatMap((op) => [1, 2].map((c) => ({ op, c, x: cell(op, c)?.ratioBC })));
    const ok = bc.every((v) => v.x !== undefined && v.x >= 1.5);
    out.push({ target: '(b)/(c) >= 1.5, P-256 and Ed25519 sign, 1 and 2 clients', met: ok, values: bc.map((v) => `${v.op}×${v.c}: ${fmtRatio(v.x)}`).join(', ') });
    const ba = results.host.filter((r) => ['p256', 'ed25519', 'rsa2048'].includes(r.op) && r.ratioBA !== undefined);
    const okBa = ba.length > 0 && ba.every((r) => r.ratioBA >= 0.7);
    out.push({ target: '(b)/(a) >= 0.7 for signatures', met: okBa, values: ba.map((r) => `${r.op}×${r.clients}: ${fmtRatio(r.ratioBA)}`).join(', ') });
    const bxd = results.host.filter((r) => ['p256', 'rsa2048', 'hmac1k'].includes(r.op) && r.ratioBxD !== undefined);
    if (bxd.length > 0) {
      out.push({
        target: "VHSM >= 1.5x SoftHSM2 behind p11-kit server, natively ((bx)/(d), issue 11's comparison without TCG)",
        met: bxd.every((r) => r.ratioBxD >= 1.5),
        values: bxd.map((r) => `${r.op}×${r.clients}: ${fmtRatio(r.ratioBxD)}`).join(', '),
      });
    }
    const pg = results.host.filter((r) => ['p256', 'ed25519', 'rsa2048'].includes(r.op) && r.clients === 16 && r.ratioPgB !== undefined);
    if (pg.length > 0) {
      out.push({ target: '(b_pg)/(b) >= 0.8 for signatures at 16 clients (PostgreSQL vs SQLite)', met: pg.every((r) => r.ratioPgB >= 0.8), values: pg.map((r) => `${r.op}: ${fmtRatio(r.ratioPgB)}`).join(', ') });
    }
  }
  const f = results.fairness.find((x) => x.label === 'default' && x.medium === 'disk') ?? results.fairness[0];
  if (f) {
    out.push({ target: `loaded p99 / quiet p99 <= 2 (${f.label} config, DB on ${f.medium})`, met: f.ratioFloodP99 <= 2 && f.ratioLoginsP99 <= 2, values: `flood ${fmtRatio(f.ratioFloodP99)}, logins ${fmtRatio(f.ratioLoginsP99)}` });
  }
  if (results.memory) out.push({ target: 'RSS <= 150 MB at 10,000 keys / 1,000 sessions', met: results.memory.rssMB <= 150, values: `${results.memory.rssMB.toFixed(1)} MB` });
  return out;
}

// ---- main ----
const load0 = loadavg();
let softhsm = { setup: null, reason: 'host section not run' };
try {
  if (sections.includes('host')) {
    softhsm = prepareSoftHsm();
    await runSection('host', 'host.js', { softhsm: softhsm.setup, quick });
  }
  if (sections.includes('fairness')) {
    await runSection('fairness', 'fairness.js', { quick, medium: 'disk', label: 'default' });
    await runSection('fairness', 'fairness.js', { quick, medium: 'tmpfs', label: 'default' });
    // What the server did before (issue 6): a fixed 128 in flight per container, 4 KDFs, every reply after its fsync.
    await runSection('fairness', 'fairness.js', {
      quick,
      medium: 'disk',
      label: '128/ct always, kdf 4, fsync each',
      maxInFlightPerContainer: 128,
      maxInFlightPerContainerShared: 128,
      maxConcurrentKdf: 4,
      durability: 'all',
    });
  }
  if (sections.includes('pg-locks')) await runSection('pg-locks', 'pg-locks.js', { quick });
  if (sections.includes('memory')) await runSection('memory', 'memory.js', {}, ['--expose-gc']);
  if (sections.includes('vm')) {
    if (!softhsm.setup && vmParts.includes('pkcs11')) softhsm = prepareSoftHsm();
    if (softhsm.setup) pkcs11Driver = { driver: softhsm.setup.binary, softhsm: softhsm.setup.library };
    else say(`!! PKCS#11 comparison in the VM skipped: ${softhsm.reason}`);
    await runVm();
  }
  if (sections.includes('profile')) {
    const dir = mkdtempSync(join(tmpdir(), 'vhsm-bench-profile-'));
    for (const [medium, clients] of [['disk', 1], ['tmpfs', 1], ['disk', 16]]) {
      status(`profiling VHSM P-256 sign, DB on ${medium}, ${clients} client(s)`);
      const out = join(dir, `sign-${medium}-${clients}.cpuprofile`);
      await runSection('profile', 'profile.js', { medium, clients, ms: 3000, out });
      if (existsSync(out)) {
        const summary = JSON.parse(execFileSync(process.execPath, [join(repoRoot, 'dist/bench/profile-summary.js'), out, '12']).toString());
        const entry = results.profile.find((p) => p.out === out);
        if (entry) Object.assign(entry, { summary });
      }
    }
    say(`profiles (.cpuprofile, open in Chrome DevTools or speedscope) kept in ${dir}`);
  }
} finally {
  if (softhsm.dir) rmSync(softhsm.dir, { recursive: true, force: true });
}

// ---- report ----
const seconds = (Date.now() - started) / 1000;
if (statusShown) process.stderr.write('\r\x1b[K');
say(`\nVHSM benchmarks — ${new Date().toISOString()} — ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, Linux ${release()}, load ${load0.map((x) => x.toFixed(1)).join(' ')} at start`);
if (results.host.length) {
  say(`\n## 1. Host, operations per second (best of ${quick ? 'two short' : 'two'} interleaved samples per cell)`);
  say(`(a) raw node:crypto in-process; (b) VHSM client→server over the in-memory transport, DB on disk, default durability; (b') same, DB on tmpfs; (b'') DB on disk, durability "all" (every reply waits for its fsync); (c) SoftHSM2 ${softhsm.version ?? ''} via PKCS#11 (C driver, threads; processes for login)`);
  say(hostTable());
  const unsupported = results.hostSetup?.vhsmUnsupported ?? {};
  for (const [op, why] of Object.entries(unsupported)) say(`  ${op}: n/a in VHSM (${why})`);
  if (!softhsm.setup) say(`  SoftHSM2 column n/a: ${softhsm.reason}`);
  if (results.host.some((r) => r.bx !== undefined || r.d !== undefined)) {
    say('\n### 1a. Across processes: issue 11\'s comparison without TCG');
    say("(bx) the (b) server, its clients in another process over a Unix socket (bench/lib/socket-transport.ts, standing in for the kernel hop); (d) the (c) token served by `p11-kit server` to the C driver through p11-kit-client.so; (d)'s RSA is PKCS#1 v1.5 (p11-kit 0.24's RPC drops PSS parameters), Ed25519 n/a (nor CKM_EDDSA)");
    say(crossProcessTable());
    if (results.hostSetup?.p11kitMissing) say(`  (d) n/a: ${results.hostSetup.p11kitMissing}`);
    for (const r of results.host.filter((x, i, all) => x.dErrors && all.findIndex((y) => y.op === x.op && y.dErrors) === i)) say(`  (d) ${r.op}: n/a (${r.dErrors[0].trim()})`);
  }
  if (results.host.some((r) => r.bPg !== undefined)) {
    say('\n### 1b. The same server on PostgreSQL (a throwaway cluster on a Unix socket, data on disk), against (b)');
    say("(b_pg) durability 'changes' (audit-only batches commit with synchronous_commit=off); (b_pg'') 'all' (every batch waits for PostgreSQL's WAL flush)");
    say(pgTable());
  }
}
if (results.pgLocks.length) {
  say('\n### 1c. Two servers on one PostgreSQL database: do they wait for each other? (16 clients in all, one shared key; pg_stat_activity sampled every ms)');
  say(pgLocksTable());
}
if (results.vm) {
  say('\n## 2. VM (QEMU TCG, Debian 6.1), through vhsm_transport.ko: null request (echo server) vs VHSM P-256 sign');
  say(vmTable());
  if (results.vm.echoPacked?.length) say(vmPlacementTable());
  say(`transport share of a sign round trip (p50, 1 client): ${fmtRatio(results.vm.transportShareP50)}`);
  if (results.vm.pkcs11?.length) {
    say('\n## 2b. VM: one PKCS#11 C driver (bench/softhsm/softhsm-bench.c) on three modules, same boot');
    say('VHSM = libvhsm-pkcs11.so in a client container → vhsm_transport.ko → vhsm-server; p11-kit = SoftHSM2 served by `p11-kit server` through p11-kit-client.so (keys in another process); in-process = libsofthsm2.so loaded by the driver');
    say(pkcs11Table());
    for (const r of results.vm.pkcs11.filter((x) => x.error)) say(`  ${r.module} ${r.op} ×${r.clients}: n/a (${r.error})`);
  }
}
if (results.fairness.length) {
  say('\n## 3. Fairness: one container signing (1 client, P-256) while other containers load the server');
  say(fairnessTable());
}
if (results.memory) {
  say(`\n## 4. Memory: ${results.memory.keys.toLocaleString('en-US')} keys (${results.memory.keysPerSecond.toLocaleString('en-US')} keys/s via parallel generateKey), ${results.memory.sessions.toLocaleString('en-US')} sessions`);
  say(memoryTable());
}
if (results.profile.length) {
  say('\n## Profiles (self time, top functions)');
  for (const p of results.profile) {
    say(`- DB on ${p.medium}, ${p.clients} client(s): ${fmtRate(p.perSecond)} signs/s`);
    for (const fn of p.summary?.functions.slice(0, 8) ?? []) say(`    ${(fn.share * 100).toFixed(1).padStart(5)}%  ${fn.name}`);
  }
}
const checks = targets();
if (checks.length) {
  say('\n## Targets (issue 6)');
  for (const t of checks) say(`- ${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.values}`);
}
say(`\nnpm run bench took ${seconds.toFixed(0)} s${results.vmSeconds ? ` (VM ${results.vmSeconds.toFixed(0)} s)` : ''}; results in ${outFile}`);

writeFileSync(
  outFile,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
      seconds: Math.round(seconds),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, kernel: release(), loadAtStart: load0, loadAtEnd: loadavg() },
      softhsm: softhsm.setup ? { version: softhsm.version, driver: 'bench/softhsm/softhsm-bench.c' } : { unavailable: softhsm.reason },
      hostSetup: results.hostSetup,
      host: results.host,
      vm: results.vm,
      fairness: results.fairness,
      memory: results.memory,
      profile: results.profile,
      targets: checks,
      errors: results.errors,
    },
    null,
    2,
  )}\n`,
);
process.exit(results.errors.length ? 1 : 0);
