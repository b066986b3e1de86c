/**
 * The shipped libvhsm-pkcs11.so with the consumers docs/pkcs11.md has
 * recipes for, unchanged, from a client container through vhsm_transport.ko
 * to vhsm-server: OpenSSH (ssh-keygen -D, ssh-agent + ssh-add -s, -Y
 * sign/verify), OpenSSL 3 with the libp11 engine, Java SunPKCS11 keytool,
 * GnuTLS p11tool/certtool, pam_p11 + pamtester. Every command under a timeout.
 */
import t from 'tap';
import { join } from 'node:path';
import { BOB_ELSEWHERE, CAROL, CONSUMER_LOCKOUT, consumerTests } from '../host/helpers/p11-consumers.js';
import { unloadModule } from './lib/module.js';
import { run, VhsmWorld } from './lib/vhsm-world.js';

const ALICE = { name: 'alice', password: 'correct horse battery staple', ctids: [101] };
const moduleDir = join(process.cwd(), 'build', 'pkcs11');
const started = Date.now();
const vw = await VhsmWorld.create({ clients: { app1: 101, app2: 102 }, users: [ALICE, BOB_ELSEWHERE, CAROL], serverConfig: { lockout: CONSUMER_LOCKOUT } });
t.teardown(async () => {
  await vw.destroy();
  t.comment(`pkcs11 consumers VM test: ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
consumerTests(t, {
  module: join(moduleDir, 'libvhsm-pkcs11.so'),
  moduleDir,
  env: { VHSM_PKCS11_CONF: vw.file('pkcs11.conf', 'slot alice\n') },
  run: async (argv, options = {}) => {
    const r = await run('app1', argv, { timeoutMs: 300_000, ...options });
    return { status: r.status, stdout: r.out, stderr: r.stderr, out: r.stdout };
  },
  dir: vw.dir,
  pin: ALICE.password,
  async importKey(id, pkcs8) {
    const r = await vw.as('alice', 'app1', ['keys', 'import', '--type', 'ec-p256', '--format', 'pkcs8-der', '--id', id, '--in', pkcs8]);
    if (r.status !== 0) throw new Error(`vhsm keys import: ${r.stderr}`);
  },
  async killServer() {
    const server = vw.server;
    vw.server = null;
    if (!server || server.exitCode !== null) return;
    const exited = new Promise((r) => server.on('exit', r));
    server.kill('SIGKILL');
    await exited;
  },
  unloadTransport: () => unloadModule(),
  // ssh in app1 reaches sshd in app2 without any network.
  sshdProxy: (config) => `ip netns exec app2 /usr/sbin/sshd -i -e -f ${config}`,
});
