/**
 * The consumers docs/pkcs11.md has recipes for, unchanged: OpenSSH
 * (ssh-keygen -D, ssh-agent -P + ssh-add -s, signatures checked by
 * ssh-keygen -Y verify), OpenSSL 3 with the libp11 engine, Java SunPKCS11
 * keytool, GnuTLS p11tool/certtool, pam_p11 with pamtester (through
 * pam_wrapper/nss_wrapper: nothing in /etc is touched). Shared by the host
 * test (test build, harness) and the VM test (shipped module, kernel).
 */
import type { Test } from 'tap';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run as local, type Run } from './p11.js';

export interface ConsumerContext {
  /** The module to load and the directory it is in (ssh-agent -P pattern). */
  readonly module: string;
  readonly moduleDir: string;
  /** Environment a process loading the module needs (configuration, test socket). */
  readonly env: Record<string, string>;
  /** Runs a consumer where the module can reach VHSM (host, or a client container). */
  run(argv: readonly string[], options?: { env?: Record<string, string>; input?: string; timeoutMs?: number }): Promise<Pick<Run, 'status' | 'stdout' | 'stderr' | 'out'>>;
  /** A scratch directory. */
  readonly dir: string;
  readonly pin: string;
}

/** Generates ec1 (P-256) and rsa1 (RSA-2048) on slot 0 (user alice), then runs every consumer. */
export function consumerTests(t: Test, ctx: ConsumerContext): void {
  const hex = (s: string): string => Buffer.from(s).toString('hex');
  const pin = ctx.pin;
  const file = (name: string) => join(ctx.dir, name);
  const tool = (args: string[]) => ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', ...args], { env: ctx.env, timeoutMs: 300_000 });
  t.test('keys for the consumers: P-256 ec1, RSA-2048 rsa1', async (t) => {
    for (const [id, type] of [['ec1', 'EC:prime256v1'], ['rsa1', 'rsa:2048']]) {
      const r = await tool(['--login', '--pin', pin, '--keypairgen', '--key-type', type!, '--id', hex(id!), '--label', id!]);
      t.equal(r.status, 0, `keygen ${type} ${r.stderr}`);
    }
  });

  t.test('OpenSSH: ssh-keygen -D, ssh-agent -P + ssh-add -s, signatures', async (t) => {
    const listed = await ctx.run(['ssh-keygen', '-D', ctx.module], { env: ctx.env });
    t.equal(listed.status, 0, listed.stderr);
    t.match(listed.stdout, /^ecdsa-sha2-nistp256 \S+ ec1$/m, 'the EC key, without a PIN');
    t.match(listed.stdout, /^ssh-rsa \S+ rsa1$/m, 'the RSA key');
    writeFileSync(file('pin'), `${pin}\n`);
    writeFileSync(file('askpass'), `#!/bin/sh\ncat ${file('pin')}\n`);
    chmodSync(file('askpass'), 0o700);
    const agentSock = file('agent.sock');
    // The agent's PKCS#11 helper loads the module with the agent's environment.
    const agent = await ctx.run(['ssh-agent', '-a', agentSock, '-P', `${ctx.moduleDir}/*`], { env: ctx.env });
    t.equal(agent.status, 0, agent.stderr);
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1];
    t.teardown(() => { if (pid) process.kill(Number(pid)); });
    const agentEnv = { ...ctx.env, SSH_AUTH_SOCK: agentSock, SSH_ASKPASS: file('askpass'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
    const add = await ctx.run(['ssh-add', '-s', ctx.module], { env: agentEnv });
    t.equal(add.status, 0, `ssh-add -s ${add.stderr}`);
    const keys = await ctx.run(['ssh-add', '-L'], { env: agentEnv });
    t.match(keys.stdout, /ec1/);
    writeFileSync(file('doc'), 'signed through ssh-agent\n');
    for (const id of ['ec1', 'rsa1']) {
      const pub = keys.stdout.split('\n').find((l) => l.endsWith(` ${id}`))!;
      writeFileSync(file(`${id}.ssh.pub`), `${pub}\n`);
      writeFileSync(file('allowed'), `alice ${pub}\n`);
      const sig = await ctx.run(['ssh-keygen', '-Y', 'sign', '-f', file(`${id}.ssh.pub`), '-n', 'file', file('doc')], { env: agentEnv });
      t.equal(sig.status, 0, `${id}: ssh-keygen -Y sign through the agent ${sig.stderr}`);
      const verify = await ctx.run(['ssh-keygen', '-Y', 'verify', '-f', file('allowed'), '-I', 'alice', '-n', 'file', '-s', file('doc.sig')], { input: 'signed through ssh-agent\n' });
      t.equal(verify.status, 0, `${id}: ssh-keygen -Y verify ${verify.stdout}${verify.stderr}`);
      await local(['rm', '-f', file('doc.sig')]);
    }
  });

  t.test('OpenSSL 3.0 with the libp11 engine: pkeyutl and req', async (t) => {
    const cnf = file('openssl.cnf');
    writeFileSync(cnf, [
      'openssl_conf = openssl_init', '[openssl_init]', 'engines = engine_section', '[engine_section]', 'pkcs11 = pkcs11_section',
      '[pkcs11_section]', 'engine_id = pkcs11', 'dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so', `MODULE_PATH = ${ctx.module}`, 'init = 0', '',
    ].join('\n'));
    const sslEnv = { ...ctx.env, OPENSSL_CONF: cnf };
    writeFileSync(file('data'), 'engine data\n');
    const digest = (await local(['openssl', 'dgst', '-sha256', '-binary', file('data')])).out;
    writeFileSync(file('data.sha256'), digest);
    const sign = await ctx.run(['openssl', 'pkeyutl', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', `pkcs11:token=alice;object=ec1;type=private?pin-value=${pin}`,
      '-sign', '-in', file('data.sha256'), '-out', file('data.sig')], { env: sslEnv });
    t.equal(sign.status, 0, `pkeyutl -sign ${sign.stderr}`);
    await ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', '--read-object', '--type', 'pubkey', '--id', hex('ec1'), '-o', file('ec1.der')], { env: ctx.env });
    const verify = await local(['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', file('ec1.der'), '-keyform', 'DER', '-in', file('data.sha256'), '-sigfile', file('data.sig')]);
    t.equal(verify.status, 0, `the signature verifies ${verify.stdout}${verify.stderr}`);
    const req = await ctx.run(['openssl', 'req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', `pkcs11:token=alice;object=rsa1;type=private?pin-value=${pin}`,
      '-subj', '/CN=rsa1', '-days', '30', '-out', file('rsa1.crt')], { env: sslEnv });
    t.equal(req.status, 0, `req -x509 ${req.stderr}`);
    const check = await local(['openssl', 'verify', '-CAfile', file('rsa1.crt'), file('rsa1.crt')]);
    t.equal(check.status, 0, `the self-signed certificate verifies ${check.stdout}${check.stderr}`);
  });

  t.test('a certificate stored next to the key: pkcs11-tool, then Java keytool sees the entry', async (t) => {
    await local(['openssl', 'x509', '-in', file('rsa1.crt'), '-outform', 'DER', '-out', file('rsa1.crt.der')]);
    const write = await tool(['--login', '--pin', pin, '--write-object', file('rsa1.crt.der'), '--type', 'cert', '--id', hex('rsa1'), '--label', 'rsa1']);
    t.equal(write.status, 0, write.stderr);
    const listed = await tool(['-O', '--type', 'cert']);
    t.match(listed.stdout, /subject:\s+DN: CN=rsa1/, 'listed before login, subject from the DER');
    const cfg = file('java.cfg');
    writeFileSync(cfg, `name = vhsm\nlibrary = ${ctx.module}\nslot = 0\n`);
    const keytool = await ctx.run(['keytool', '-list', '-storetype', 'PKCS11', '-providerClass', 'sun.security.pkcs11.SunPKCS11', '-providerArg', cfg, '-storepass', pin], { env: ctx.env, timeoutMs: 300_000 });
    t.equal(keytool.status, 0, keytool.stderr);
    t.match(keytool.stdout, /Your keystore contains 1 entry/);
    t.match(keytool.stdout, /rsa1, PrivateKeyEntry/);
  });

  t.test('GnuTLS: p11tool lists, certtool signs a certificate', async (t) => {
    const list = await ctx.run(['p11tool', '--provider', ctx.module, '--list-all', 'pkcs11:token=alice'], { env: ctx.env });
    t.equal(list.status, 0, list.stderr);
    t.match(list.stdout, /Public key \(EC\/ECDSA-SECP256R1\)/);
    t.match(list.stdout, /Public key \(RSA-2048\)/);
    writeFileSync(file('cert.tmpl'), 'cn = ec1\nexpiration_days = 30\n');
    const cert = await ctx.run(['certtool', '--provider', ctx.module, '--generate-self-signed', '--load-privkey', 'pkcs11:token=alice;object=ec1;type=private',
      '--template', file('cert.tmpl'), '--outfile', file('ec1.crt')], { env: { ...ctx.env, GNUTLS_PIN: pin } });
    t.equal(cert.status, 0, cert.stderr);
    const check = await local(['openssl', 'verify', '-CAfile', file('ec1.crt'), file('ec1.crt')]);
    t.equal(check.status, 0, `certtool's self-signed certificate verifies ${check.stdout}${check.stderr}`);
  });

  t.test('pam_p11 0.3.1 + pamtester: the right PIN authenticates, a wrong one does not', async (t) => {
    // Debian 12's pam_p11 only handles the first public key listed: a slot that shows ec1 only.
    const pamConf = file('pam-pkcs11.conf');
    writeFileSync(pamConf, 'slot alice only-ids=ec1\n');
    const home = file('home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const keys = await ctx.run(['ssh-keygen', '-D', ctx.module], { env: { ...ctx.env, VHSM_PKCS11_CONF: pamConf } });
    t.match(keys.stdout, /^ecdsa-sha2-nistp256 \S+ ec1\n$/, 'the slot lists ec1 alone');
    writeFileSync(join(home, '.ssh', 'authorized_keys'), keys.stdout);
    mkdirSync(file('pam.d'));
    writeFileSync(file('pam.d/p11test'), `auth required /usr/lib/x86_64-linux-gnu/security/pam_p11.so ${ctx.module}\n`);
    writeFileSync(file('passwd'), `alice:x:1000:1000:alice:${home}:/bin/sh\n`);
    writeFileSync(file('group'), 'alice:x:1000:\n');
    const pamEnv = {
      ...ctx.env, VHSM_PKCS11_CONF: pamConf, LD_PRELOAD: 'libpam_wrapper.so libnss_wrapper.so', PAM_WRAPPER: '1',
      PAM_WRAPPER_SERVICE_DIR: file('pam.d'), NSS_WRAPPER_PASSWD: file('passwd'), NSS_WRAPPER_GROUP: file('group'),
    };
    const good = await ctx.run(['pamtester', 'p11test', 'alice', 'authenticate'], { env: pamEnv, input: `${pin}\n` });
    t.equal(good.status, 0, `right PIN: ${good.stdout}${good.stderr}`);
    t.match(good.stdout + good.stderr, /successfully authenticated/);
    const bad = await ctx.run(['pamtester', 'p11test', 'alice', 'authenticate'], { env: pamEnv, input: 'not the pin\n' });
    t.not(bad.status, 0, 'wrong PIN: refused');
    t.match(bad.stdout + bad.stderr, /Authentication failure/);
  });
}
