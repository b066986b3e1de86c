/**
 * packaging/install-host.sh's pkcs11 part, into a scratch root (--root): the
 * module lands in p11-kit's module directory (the multiarch pkcs11/) with a
 * p11-kit module file naming it relatively, and --uninstall takes both away.
 * Then the real p11-kit finds it: in a private mount namespace the scratch
 * root's two directories are bound over the system's (nothing on the host
 * changes), and `p11-kit list-modules` and pkcs11-tool through
 * p11-kit-proxy.so see VHSM. The VM test packaging-install.test.ts covers
 * the whole script.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p11Module, repoRoot, run } from './helpers/p11.js';

const installer = join(repoRoot, 'packaging/install-host.sh');
const dir = mkdtempSync(join(tmpdir(), 'vhsm-install-p11-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'root');
const moduleDir = (await run(['pkg-config', '--variable=p11_module_path', 'p11-kit-1'])).stdout.trim();
const configDir = (await run(['pkg-config', '--variable=p11_module_configs', 'p11-kit-1'])).stdout.trim();

t.test('install-host.sh --no-module --no-tools: the module and its p11-kit file', async (t) => {
  t.equal(moduleDir, `/usr/lib/${(await run(['gcc', '-print-multiarch'])).stdout.trim()}/pkcs11`, 'p11-kit looks in the multiarch pkcs11/ directory');
  const r = await run([installer, '--root', root, '--no-module', '--no-tools']);
  t.equal(r.status, 0, `exit 0: ${r.stdout}${r.stderr}`);
  const lib = join(root, moduleDir, 'libvhsm-pkcs11.so');
  t.ok(readFileSync(lib).equals(readFileSync(p11Module)), `the shipped module in ${moduleDir}`);
  t.equal(statSync(lib).mode & 0o777, 0o644);
  const conf = readFileSync(join(root, configDir, 'vhsm.module'), 'utf8');
  t.match(conf, /^module: libvhsm-pkcs11\.so$/m, `${configDir}/vhsm.module names it relative to p11-kit's module directory`);
  const again = await run([installer, '--root', root, '--no-module', '--no-tools']);
  t.equal(again.status, 0);
  t.notMatch(again.stdout, /\+ install/, 'a second run changes nothing');
});

// A private mount namespace needs root (CAP_SYS_ADMIN), as the host tests have.
const probe = await run(['unshare', '--mount', '--propagation', 'private', 'true']);
const noNamespace = probe.status === 0 ? false : `no private mount namespace here (${probe.stderr.trim()})`;
t.test('p11-kit finds it: list-modules and pkcs11-tool through p11-kit-proxy.so', { skip: noNamespace }, async (t) => {
  const conf = join(dir, 'pkcs11.conf');
  writeFileSync(conf, 'slot alice\n');
  const script = `mount --bind "$1${moduleDir}" "${moduleDir}" && mount --bind "$1${configDir}" "${configDir}" && p11-kit list-modules && pkcs11-tool --module "$2" -L`;
  const proxy = join(moduleDir, '..', 'p11-kit-proxy.so');
  const r = await run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', root, proxy], { env: { VHSM_PKCS11_CONF: conf } });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^vhsm: libvhsm-pkcs11\.so\n\s+library-description: VHSM PKCS#11 module/m, 'p11-kit list-modules');
  t.match(r.stdout, /Slot \d+ \(0x[0-9a-f]+\): VHSM user alice/, 'the slot through p11-kit-proxy.so (no server: no token)');
});

t.test('install-host.sh --uninstall takes both away', async (t) => {
  const r = await run([installer, '--root', root, '--uninstall']);
  t.equal(r.status, 0, r.stderr);
  t.notOk(existsSync(join(root, moduleDir, 'libvhsm-pkcs11.so')));
  t.notOk(existsSync(join(root, configDir, 'vhsm.module')));
});
