/**
 * OpenSSH, OpenSSL (libp11 engine), Java keytool, GnuTLS and pam_p11 against
 * the module's test build and the real server code (host harness). The same
 * checks through the kernel: test/vm/pkcs11-consumers.test.ts.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALICE } from './helpers/fixture.js';
import { BOB_ELSEWHERE, CAROL, CONSUMER_LOCKOUT, consumerTests } from './helpers/p11-consumers.js';
import { startP11Harness } from './helpers/p11-harness.js';
import { p11Build, p11TestModule, run } from './helpers/p11.js';

const harness = await startP11Harness([ALICE, BOB_ELSEWHERE, CAROL], { lockout: CONSUMER_LOCKOUT });
t.teardown(() => harness.close());
const conf = join(harness.fixture.dir, 'pkcs11.conf');
writeFileSync(conf, 'slot alice\n');
consumerTests(t, {
  module: p11TestModule,
  moduleDir: p11Build,
  env: harness.env(conf),
  run: (argv, options) => run(argv, options),
  dir: harness.fixture.dir,
  pin: ALICE.password,
  async importKey(id, pkcs8) {
    const session = await (await harness.fixture.client()).login(ALICE.name, ALICE.password);
    await session.importKey({ type: 'ec-p256', keyId: id, format: 'pkcs8-der', keyData: readFileSync(pkcs8) });
    await session.logout();
  },
  killServer: () => harness.stopServer(),
  // The host has no containers: sshd -i runs directly as the ProxyCommand.
  sshdProxy: (config) => `/usr/sbin/sshd -i -e -f ${config}`,
});
