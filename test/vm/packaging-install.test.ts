/**
 * packaging/install-host.sh for real, as far as a VM whose root is read-only
 * allows: --dry-run on the live system, then a full install into a scratch
 * root (--root): DKMS really builds and installs the module there from the
 * copied sources, modprobe loads that build with the installed
 * /etc/modprobe.d/vhsm.conf, and the installed /opt/vhsm tree (production
 * node_modules only) runs vhsm-server with the installed config under the
 * unit's privileges. Then idempotence and --uninstall. Also: the systemd
 * units pass systemd-analyze, and every shell script passes shellcheck.
 */
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VhsmAdmin } from '../../transport/netlink-admin.js';
import { loadModule, unloadModule } from './lib/module.js';
import { createNetns, deleteNetns } from './lib/netns.js';
import { repoRoot } from './lib/vhsm-world.js';

const installer = join(repoRoot, 'packaging/install-host.sh');
const kver = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
const version = /^PACKAGE_VERSION="([^"]+)"/m.exec(readFileSync(join(repoRoot, 'kernel/dkms.conf'), 'utf8'))![1]!;
const dir = mkdtempSync('/tmp/vhsm-install-');
chmodSync(dir, 0o755); // the server's user must reach the installed tree, as in /opt
const root = join(dir, 'root');
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
function sh(argv: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
// DKMS uses bash process substitution (/dev/fd/N); the VM's devtmpfs has no /dev/fd.
if (!existsSync('/dev/fd')) symlinkSync('/proc/self/fd', '/dev/fd');
t.teardown(() => {
  try {
    deleteNetns('vhsm');
  } catch {
    // not created
  }
  unloadModule();
  rmSync(dir, { recursive: true, force: true });
});

t.test('shellcheck: every shell script in packaging/ and vagrant/', { skip: have('shellcheck') ? false : 'shellcheck is not installed (apt-get install shellcheck)' }, async (t) => {
  const scripts = [
    'packaging/install-host.sh',
    'packaging/lib/vhsm-bind.sh',
    'packaging/lxc/vhsm-bind',
    'packaging/docker/vhsm-docker-bind',
    'packaging/nspawn/vhsm-machine-bind',
    'vagrant/provision.sh',
    'vagrant/lxc-demo.sh',
  ];
  for (const s of scripts) {
    const r = sh(['shellcheck', '-x', s]);
    t.equal(r.status, 0, `${s}${r.status ? `\n${r.out}` : ''}`);
  }
});

t.test('systemd units pass systemd-analyze verify', { skip: have('systemd-analyze') ? false : 'systemd-analyze is not installed' }, async (t) => {
  // The units name /usr/local/bin and /opt/vhsm, which exist only after an
  // install: verify copies that point at an existing binary instead.
  const units = join(dir, 'units');
  mkdirSync(units);
  const server = readFileSync(join(repoRoot, 'packaging/systemd/vhsm-server.service'), 'utf8').replace(/\/usr\/local\/bin\/vhsm-(admin|server)/g, '/bin/true');
  writeFileSync(join(units, 'vhsm-server.service'), server);
  let r = sh(['systemd-analyze', 'verify', join(units, 'vhsm-server.service')]);
  t.equal(r.status, 0, `vhsm-server.service: ${r.out || 'clean'}`);
  t.equal(r.out.trim(), '', 'no warnings');
  r = sh(['systemd-analyze', 'security', '--offline=true', '--threshold=30', join(units, 'vhsm-server.service')]);
  const exposure = /Overall exposure level for vhsm-server.service: ([\d.]+)/.exec(r.out);
  t.ok(exposure && Number(exposure[1]) <= 2.0, `systemd-analyze security: exposure ${exposure?.[1]} (≤ 2.0, "OK")`);

  writeFileSync(join(units, 'docker.service'), '[Service]\nExecStart=/bin/true\n'); // stands in for Docker's own
  writeFileSync(
    join(units, 'vhsm-docker-bind.service'),
    readFileSync(join(repoRoot, 'packaging/docker/vhsm-docker-bind.service'), 'utf8').replace('/opt/vhsm/packaging/docker/vhsm-docker-bind', '/bin/true'),
  );
  r = sh(['systemd-analyze', 'verify', join(units, 'vhsm-docker-bind.service')]);
  t.equal(r.status, 0, `vhsm-docker-bind.service: ${r.out || 'clean'}`);
});

t.test('install-host.sh --dry-run shows every step and changes nothing', async (t) => {
  const watched = ['/usr/src', '/opt', '/usr/local/bin', '/etc/modprobe.d', '/etc/modules-load.d'];
  const before = watched.map((p) => (existsSync(p) ? statSync(p).mtimeMs : 0));
  const r = sh([installer, '--dry-run', '--server']);
  t.equal(r.status, 0, `exit 0${r.status ? `: ${r.out}` : ''}`);
  for (const step of [
    `dkms add ${'vhsm-transport'}/${version}`,
    `dkms install vhsm-transport/${version} -k ${kver}`,
    'modprobe vhsm_transport',
    '/etc/modprobe.d/vhsm.conf',
    '/etc/modules-load.d/vhsm.conf',
    'ln -sfn /opt/vhsm/dist/tools/vhsmctl.js /usr/local/bin/vhsmctl',
    'useradd --system',
    '/usr/local/lib/systemd/system/vhsm-server.service',
  ]) {
    // A host that already has VHSM installed (the Vagrant VM) skips the steps that are done.
    if (!r.out.includes(step) && /already built and installed|is loaded/.test(r.out) && /dkms|modprobe/.test(step)) continue;
    if (step.startsWith('useradd') && !r.out.includes(step) && spawnSync('getent', ['passwd', 'vhsm']).status === 0) continue;
    t.match(r.out, step, `shows: ${step}`);
  }
  t.same(watched.map((p) => (existsSync(p) ? statSync(p).mtimeMs : 0)), before, `${watched.join(', ')} untouched`);
  t.equal(sh([installer, '--frobnicate']).status, 2, 'an unknown option: exit 2');
  t.equal(sh([installer, '--veid', 'x', '--dry-run']).status, 2, 'a bad --veid: exit 2');
});

// DKMS is not among the packages scripts/setup.sh installs: without it the
// module part is skipped and the tools part still runs.
const haveDkms = have('dkms');
const noDkms = 'dkms is not installed (apt-get install dkms)';

t.test(`install-host.sh --root: DKMS builds ${version} for ${kver}, modprobe loads it with the installed config`, async (t) => {
  const r = sh([installer, '--root', root, '--server', ...(haveDkms ? [] : ['--no-module'])]);
  t.equal(r.status, 0, `exit 0${r.status ? `: ${r.out}` : ''}`);
  t.test('the module, through DKMS', { skip: haveDkms ? false : noDkms }, async (t) => {
    t.ok(existsSync(join(root, `usr/src/vhsm-transport-${version}/dkms.conf`)), `sources in /usr/src/vhsm-transport-${version}`);
    t.notOk(existsSync(join(root, `usr/src/vhsm-transport-${version}/vhsm_transport.ko`)), 'without build products');
    const ko = join(root, `lib/modules/${kver}/updates/dkms/vhsm_transport.ko`);
    t.ok(existsSync(ko), 'DKMS installed the module in updates/dkms');
    t.equal(execFileSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' }).split(' ')[0], kver, 'built for the running kernel');
    t.match(readFileSync(join(root, 'etc/modprobe.d/vhsm.conf'), 'utf8'), /^options vhsm_transport vhsm_veid=412$/m, 'modprobe.d: vhsm_veid=412');
    t.match(readFileSync(join(root, 'etc/modules-load.d/vhsm.conf'), 'utf8'), /^vhsm_transport$/m, 'modules-load.d: vhsm_transport');

    // What happens at boot: modprobe with the installed module tree and config.
    execFileSync('depmod', ['-b', root, kver]);
    const mp = sh(['modprobe', '-d', root, '-C', join(root, 'etc/modprobe.d'), 'vhsm_transport']);
    t.equal(mp.status, 0, `modprobe vhsm_transport${mp.out ? `: ${mp.out}` : ''}`);
    t.equal(readFileSync('/sys/module/vhsm_transport/parameters/vhsm_veid', 'utf8').trim(), '412', 'loaded with vhsm_veid=412 from modprobe.d');
  });
  if (!haveDkms) loadModule({ vhsm_veid: 412 }); // the checkout's build, for the next test

  for (const b of ['vhsm', 'vhsm-admin', 'vhsmctl', 'vhsm-server']) {
    t.equal(readlinkSync(join(root, 'usr/local/bin', b)), `/opt/vhsm/dist/tools/${b}.js`, `/usr/local/bin/${b} -> /opt/vhsm/dist/tools/${b}.js`);
    t.ok(statSync(join(root, 'opt/vhsm/dist/tools', `${b}.js`)).mode & 0o111, `${b}.js is executable`);
  }
  t.notOk(existsSync(join(root, 'opt/vhsm/node_modules/typescript')), 'no dev dependencies in /opt/vhsm');
  t.notOk(existsSync(join(root, 'opt/vhsm/dist/test')), 'no tests in /opt/vhsm');
  t.ok(existsSync(join(root, 'opt/vhsm/packaging/lxc/vhsm-bind')), 'the LXC hook in /opt/vhsm/packaging');
  t.ok(existsSync(join(root, 'etc/vhsm/ctids')), 'the example CTID map');
  t.ok(existsSync(join(root, 'usr/lib/x86_64-linux-gnu/pkcs11/libvhsm-pkcs11.so')), 'the PKCS#11 module in the multiarch pkcs11/ directory');
  t.match(readFileSync(join(root, 'usr/share/p11-kit/modules/vhsm.module'), 'utf8'), /^module: libvhsm-pkcs11\.so$/m, 'its p11-kit module file');
  t.equal(statSync(join(root, 'var/lib/vhsm')).mode & 0o777, 0o700, '/var/lib/vhsm is 0700');
});

t.test('the installed tree runs: vhsmctl binds, vhsm-server registers with the unit\'s privileges', async (t) => {
  const tools = join(root, 'opt/vhsm/dist/tools');
  createNetns('vhsm');
  let r = sh([join(tools, 'vhsmctl.js'), 'bind', '--ctid', '412', '--netns', '/run/netns/vhsm']);
  t.equal(r.status, 0, `installed vhsmctl bind: ${r.out}`);
  // The unit's user (no passwd entry needed) owns the state directory.
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  execFileSync('chown', ['64055:64055', state]);
  const config = JSON.parse(readFileSync(join(root, 'etc/vhsm/server.json'), 'utf8')) as Record<string, unknown>;
  t.equal(config.db, '/var/lib/vhsm/vhsm.db', 'the installed config names the unit\'s state directory');
  config.db = join(state, 'vhsm.db');
  writeFileSync(join(dir, 'server.json'), JSON.stringify(config));
  const asVhsm = ['setpriv', '--reuid=64055', '--regid=64055', '--clear-groups'];
  const caps = ['--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin', '--no-new-privs'];
  r = sh([...asVhsm, join(tools, 'vhsm-admin.js'), 'init'], { VHSM_DB: config.db as string }); // ExecStartPre
  t.equal(r.status, 0, `ExecStartPre vhsm-admin init as the vhsm user: ${r.out}`);
  t.equal(statSync(config.db as string).mode & 0o777, 0o600, 'the DB is 0600');

  const server = spawn('ip', ['netns', 'exec', 'vhsm', ...asVhsm, ...caps, join(tools, 'vhsm-server.js'), '--config', join(dir, 'server.json')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  server.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((resolve) => server.on('exit', resolve));
  const admin = await VhsmAdmin.open();
  try {
    for (let i = 0; i < 600 && !(await admin.stats()).server; i++) await new Promise((res) => setTimeout(res, 100));
    t.equal((await admin.stats()).server?.ctid, 412, `vhsm-server from /opt/vhsm registered from CTID 412 as uid 64055 with only CAP_NET_ADMIN${log ? `\n${log}` : ''}`);
    // Registration comes before the log line: under load the line can lag.
    for (let i = 0; i < 100 && !log.includes('"vhsm-server started"'); i++) await new Promise((res) => setTimeout(res, 100));
    t.match(log, /"vhsm-server started"/, 'JSON log line on stderr');
    server.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM: exit 0');
    t.equal((await admin.stats()).server, undefined, 'unregistered');
  } finally {
    server.kill('SIGKILL');
    await admin.close();
  }
});

t.test('install-host.sh again: nothing to rebuild, the admin\'s config wins', { skip: haveDkms ? false : noDkms }, async (t) => {
  writeFileSync(join(root, 'etc/modprobe.d/vhsm.conf'), 'options vhsm_transport vhsm_veid=500\n');
  const r = sh([installer, '--root', root, '--server', '--no-tools']);
  t.equal(r.status, 0, `exit 0${r.status ? `: ${r.out}` : ''}`);
  t.match(r.out, `/usr/src/vhsm-transport-${version} is up to date`);
  t.match(r.out, `already built and installed for ${kver}`);
  t.notMatch(r.out, /dkms (add|install)/, 'DKMS is not asked again');
  t.match(r.out, /keeping \/etc\/modprobe.d\/vhsm.conf/);
  t.equal(readFileSync(join(root, 'etc/modprobe.d/vhsm.conf'), 'utf8'), 'options vhsm_transport vhsm_veid=500\n', 'the edited modprobe.d file is kept');
});

t.test('install-host.sh --uninstall removes what it installed and keeps the key store', async (t) => {
  unloadModule();
  const r = sh([installer, '--root', root, '--uninstall']);
  t.equal(r.status, 0, `exit 0${r.status ? `: ${r.out}` : ''}`);
  for (const gone of [`usr/src/vhsm-transport-${version}`, `lib/modules/${kver}/updates/dkms/vhsm_transport.ko`, `var/lib/dkms/vhsm-transport`, 'opt/vhsm', 'usr/local/bin/vhsmctl', 'etc/modprobe.d/vhsm.conf', 'etc/modules-load.d/vhsm.conf', 'usr/local/lib/systemd/system/vhsm-server.service',
    'usr/lib/x86_64-linux-gnu/pkcs11/libvhsm-pkcs11.so', 'usr/share/p11-kit/modules/vhsm.module']) {
    t.notOk(existsSync(join(root, gone)) || isLink(join(root, gone)), `removed: /${gone}`);
  }
  for (const kept of ['etc/vhsm/server.json', 'etc/vhsm/ctids', 'var/lib/vhsm']) t.ok(existsSync(join(root, kept)), `kept: /${kept}`);
  t.equal(sh([installer, '--root', root, '--uninstall']).status, 0, 'uninstalling twice is fine');
});

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
