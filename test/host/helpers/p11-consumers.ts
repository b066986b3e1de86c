/**
 * The consumers docs/pkcs11.md has recipes for, unchanged: OpenSSH
 * (ssh-keygen -D, ssh-agent -P + ssh-add -s, signatures checked by
 * ssh-keygen -Y verify), OpenSSL 3 with the libp11 engine, Java SunPKCS11
 * keytool, GnuTLS p11tool/certtool, pam_p11 with pamtester (through
 * pam_wrapper/nss_wrapper: nothing in /etc is touched). Shared by the host
 * test (test build, harness) and the VM test (shipped module, kernel).
 */
import type { Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { run as local, type Run } from './p11.js';

/** Users besides alice: bob is not allowed in the client container (CTID 101), carol gets locked out. */
export const BOB_ELSEWHERE = { name: 'bob', password: 'hunter2-but-longer', ctids: [102] } as const;
export const CAROL = { name: 'carol', password: 'carol locks herself out', ctids: [101] } as const;
/** Four failures lock a (user, container) pair, without waiting for the backoff. */
export const CONSUMER_LOCKOUT = { freeAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 1, lockAfter: 4 } as const;

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
  /** Imports a PKCS#8 DER key file as alice's key `id` the admin/CLI way (not through the module). */
  importKey(id: string, pkcs8: string): Promise<void>;
  /** Kills the server (SIGKILL; host: the harness stops answering and drops its connections). Last test only. */
  killServer(): Promise<void>;
  /** VM only: rmmod vhsm_transport (after killServer), for the module-unloaded case. */
  unloadTransport?(): void;
  /** The ProxyCommand that runs `sshd -i -e -f CONFIG` "in container app2" (host: directly). */
  sshdProxy(config: string): string;
}

/** Generates ec1 (P-256) and rsa1 (RSA-2048) on slot 0 (user alice), then runs every consumer. */
export function consumerTests(t: Test, ctx: ConsumerContext): void {
  const hex = (s: string): string => Buffer.from(s).toString('hex');
  const pin = ctx.pin;
  const file = (name: string) => join(ctx.dir, name);
  const tool = (args: string[]) => ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', ...args], { env: ctx.env, timeoutMs: 300_000 });
  /**
   * An ssh-agent allowed to load the module (its PKCS#11 helper loads it with
   * the agent's environment), stopped at the test's end, and the environment
   * for ssh-add/ssh-keygen to use it with the PIN from askpass.
   */
  const startAgent = async (t: Test, socketName: string) => {
    const agentSock = file(socketName);
    const agent = await ctx.run(['ssh-agent', '-a', agentSock, '-P', `${ctx.moduleDir}/*`], { env: ctx.env });
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
    t.teardown(() => { try { if (agentPid > 0) process.kill(agentPid); } catch { /* gone */ } });
    const agentEnv = { ...ctx.env, SSH_AUTH_SOCK: agentSock, SSH_ASKPASS: file('askpass'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
    return { agent, agentPid, agentEnv };
  };
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
    writeFileSync(file('pin'), `${pin}\n`, { mode: 0o600 });
    writeFileSync(file('askpass'), `#!/bin/sh\ncat ${file('pin')}\n`);
    chmodSync(file('askpass'), 0o700);
    const { agent, agentEnv } = await startAgent(t, 'agent.sock');
    t.equal(agent.status, 0, agent.stderr);
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

  t.test('OpenSSH: ssh -I logs in to sshd of another container, with ec1 and with rsa1', async (t) => {
    // sshd -i over a ProxyCommand: no network; its own host key, authorized
    // keys and config in the scratch dir, public-key authentication only.
    const hostKey = file('sshd_host_ed25519');
    const keygen = await local(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'app2', '-f', hostKey]);
    t.equal(keygen.status, 0, keygen.stderr);
    // The privilege separation directory the package's tmpfiles/init script would make.
    if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
    const authorized = file('sshd_authorized_keys');
    const config = file('sshd_config');
    writeFileSync(config, [
      `HostKey ${hostKey}`, `AuthorizedKeysFile ${authorized}`, 'StrictModes no', 'UsePAM no', 'PubkeyAuthentication yes',
      'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'AuthenticationMethods publickey',
      'PermitRootLogin prohibit-password', 'LogLevel VERBOSE', 'PidFile none', '',
    ].join('\n'));
    const knownHosts = file('ssh_known_hosts');
    writeFileSync(knownHosts, `app2 ${(await local(['cat', `${hostKey}.pub`])).stdout}`);
    const listed = await ctx.run(['ssh-keygen', '-D', ctx.module], { env: ctx.env });
    // BatchMode=no: ssh asks the PIN (askpass, from the 0600 file); nothing else can prompt.
    // IdentitiesOnly=yes drops every token key unless an IdentityFile names its public key:
    // that selects the one key to log in with (and keeps ~/.ssh out of it).
    const sshArgv = (id: string, ...command: string[]): string[] => [
      'ssh', '-F', 'none', '-I', ctx.module, '-l', userInfo().username, '-o', `ProxyCommand=${ctx.sshdProxy(config)}`,
      '-o', 'HostKeyAlias=app2', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=no', '-o', 'PreferredAuthentications=publickey', '-o', 'IdentitiesOnly=yes', '-o', `IdentityFile=${file(`${id}.login.pub`)}`,
      '-o', 'IdentityAgent=none',
      '-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no', '-o', 'ServerAliveInterval=30', 'app2', ...command,
    ];
    const askpassEnv = { ...ctx.env, SSH_ASKPASS: file('askpass'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
    for (const [id, alg] of [['ec1', 'ECDSA'], ['rsa1', 'RSA']] as const) {
      const line = `${listed.stdout.split('\n').find((l) => l.endsWith(` ${id}`))}\n`;
      writeFileSync(file(`${id}.login.pub`), line);
      writeFileSync(authorized, line);
      const ssh = await ctx.run(sshArgv(id, 'echo', 'ok from app2'), { env: askpassEnv, timeoutMs: 300_000 });
      t.equal(ssh.status, 0, `${id}: ssh -I ${ssh.stderr}`);
      t.equal(ssh.stdout, 'ok from app2\n', `${id}: the command ran on the other side`);
      t.match(ssh.stderr, new RegExp(`Accepted publickey for \\S+ .* ${alg} SHA256:`), `${id}: sshd accepted the ${alg} key`);
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

  t.test('OpenSSL s_server holds its key in VHSM; an unmodified s_client verifies', async (t) => {
    // The certificate as stored on the token (req -x509 above, written with rsa1's CKA_ID).
    const read = await tool(['--read-object', '--type', 'cert', '--id', hex('rsa1'), '-o', file('rsa1.token.der')]);
    t.equal(read.status, 0, read.stderr);
    const pem = await local(['openssl', 'x509', '-inform', 'DER', '-in', file('rsa1.token.der'), '-out', file('rsa1.token.crt')]);
    t.equal(pem.status, 0, pem.stderr);
    // The PIN in the engine section of a 0600 configuration file, not on the command line.
    const cnf = file('openssl-server.cnf');
    writeFileSync(cnf, [
      'openssl_conf = openssl_init', '[openssl_init]', 'engines = engine_section', '[engine_section]', 'pkcs11 = pkcs11_section',
      '[pkcs11_section]', 'engine_id = pkcs11', 'dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so', `MODULE_PATH = ${ctx.module}`,
      `PIN = ${pin}`, 'init = 0', '',
    ].join('\n'), { mode: 0o600 });
    const sock = file('tls.sock');
    let serverDone = false;
    // One connection (-naccept 1), then s_server exits; the timeout bounds it otherwise.
    const server = ctx.run(['openssl', 's_server', '-engine', 'pkcs11', '-keyform', 'engine', '-key', 'pkcs11:token=alice;object=rsa1;type=private',
      '-cert', file('rsa1.token.crt'), '-unix', sock, '-naccept', '1', '-www'], { env: { ...ctx.env, OPENSSL_CONF: cnf }, timeoutMs: 240_000 })
      .finally(() => (serverDone = true));
    const deadline = Date.now() + 200_000;
    while (!existsSync(sock) && !serverDone && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    t.ok(existsSync(sock), 's_server listens');
    const client = await ctx.run(['openssl', 's_client', '-unix', sock, '-CAfile', file('rsa1.crt'), '-verify_return_error', '-ign_eof'],
      { input: 'GET / HTTP/1.0\r\n\r\n', timeoutMs: 120_000 });
    t.equal(client.status, 0, `s_client ${client.stderr}`);
    t.match(client.stdout, /Verify return code: 0 \(ok\)/, 'the server certificate verifies');
    t.match(client.stdout, /subject=CN = rsa1/);
    t.match(client.stdout, /HTTP\/1\.0 200 ok/, 'data over the TLS connection');
    const served = await server;
    t.equal(served.status, 0, `s_server exits after its one connection ${served.stderr}`);
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

  /** pam_p11 for `user` through pam_wrapper/nss_wrapper: its own service dir, passwd, home and slot file. */
  const pamWorld = (user: string, slotLine: string, authorizedKeys: string, tag = user): Record<string, string> => {
    const base = file(`pam-${tag}`);
    const home = join(base, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'authorized_keys'), authorizedKeys);
    mkdirSync(join(base, 'pam.d'), { recursive: true });
    writeFileSync(join(base, 'pam.d', 'p11test'), `auth required /usr/lib/x86_64-linux-gnu/security/pam_p11.so ${ctx.module}\n`);
    writeFileSync(join(base, 'passwd'), `${user}:x:1000:1000:${user}:${home}:/bin/sh\n`);
    writeFileSync(join(base, 'group'), `${user}:x:1000:\n`);
    writeFileSync(join(base, 'pkcs11.conf'), `${slotLine}\n`);
    return {
      ...ctx.env, VHSM_PKCS11_CONF: join(base, 'pkcs11.conf'), LD_PRELOAD: 'libpam_wrapper.so libnss_wrapper.so', PAM_WRAPPER: '1',
      PAM_WRAPPER_SERVICE_DIR: join(base, 'pam.d'), NSS_WRAPPER_PASSWD: join(base, 'passwd'), NSS_WRAPPER_GROUP: join(base, 'group'),
    };
  };
  const pamtester = (user: string, env: Record<string, string>, secret: string) =>
    ctx.run(['pamtester', 'p11test', user, 'authenticate'], { env, input: `${secret}\n` });
  /** The token's public keys as ssh-keygen -D lists them with slot file `conf` (no PIN). */
  const tokenKeys = async (slotLine: string): Promise<string> => {
    const conf = file(`keys-${slotLine.replace(/\W+/g, '_')}.conf`);
    writeFileSync(conf, `${slotLine}\n`);
    return (await ctx.run(['ssh-keygen', '-D', ctx.module], { env: { ...ctx.env, VHSM_PKCS11_CONF: conf } })).stdout;
  };

  t.test('pam_p11 0.3.1 + pamtester: the right PIN authenticates, a wrong one does not', async (t) => {
    // Debian 12's pam_p11 only handles the first public key listed: a slot that shows ec1 only.
    const keys = await tokenKeys('slot alice only-ids=ec1');
    t.match(keys, /^ecdsa-sha2-nistp256 \S+ ec1\n$/, 'the slot lists ec1 alone');
    const env = pamWorld('alice', 'slot alice only-ids=ec1', keys);
    const good = await pamtester('alice', env, pin);
    t.equal(good.status, 0, `right PIN: ${good.stdout}${good.stderr}`);
    t.match(good.stdout + good.stderr, /successfully authenticated/);
    const bad = await pamtester('alice', env, 'not the pin');
    t.not(bad.status, 0, 'wrong PIN: refused');
    t.match(bad.stdout + bad.stderr, /Authentication failure/);
  });

  t.test('pam_p11: a key not in authorized_keys fails', async (t) => {
    // The token shows ec1; authorized_keys holds rsa1 (alice's, but not the one pam_p11 checks).
    const rsa = (await tokenKeys('slot alice only-ids=rsa1')).trim();
    t.match(rsa, /^ssh-rsa \S+ rsa1$/);
    const env = pamWorld('alice', 'slot alice only-ids=ec1', `${rsa}\n`, 'alice-rsa');
    const r = await pamtester('alice', env, pin);
    t.not(r.status, 0, 'right PIN, unauthorized key: refused');
    t.match(r.stdout + r.stderr, /No authorized keys on token/);
  });

  t.test('pam_p11: a locked user fails, even with the right PIN (CKR_PIN_LOCKED)', async (t) => {
    const carolConf = file('carol.conf');
    writeFileSync(carolConf, 'slot carol\n');
    const gen = await ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', '--login', '--pin', CAROL.password, '--keypairgen', '--key-type', 'EC:prime256v1',
      '--id', hex('c1'), '--label', 'c1'], { env: { ...ctx.env, VHSM_PKCS11_CONF: carolConf }, timeoutMs: 300_000 });
    t.equal(gen.status, 0, `carol's key ${gen.stderr}`);
    const keys = await tokenKeys('slot carol');
    t.match(keys, /^ecdsa-sha2-nistp256 \S+ c1\n$/);
    const env = pamWorld('carol', 'slot carol', keys);
    const first = await pamtester('carol', env, CAROL.password);
    t.equal(first.status, 0, `before the lock carol logs in: ${first.stdout}${first.stderr}`);
    for (let i = 0; i < CONSUMER_LOCKOUT.lockAfter; i++) {
      const bad = await pamtester('carol', env, `wrong ${i}`);
      t.not(bad.status, 0, `wrong PIN ${i + 1}: refused`);
    }
    const locked = await pamtester('carol', env, CAROL.password);
    t.not(locked.status, 0, 'locked: the right PIN is refused');
    t.match(locked.stdout + locked.stderr, /Authentication failure/);
    const login = await ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', '--login', '--pin', CAROL.password, '--list-objects'],
      { env: { ...ctx.env, VHSM_PKCS11_CONF: carolConf } });
    t.not(login.status, 0);
    t.match(login.stderr + login.stdout, /CKR_PIN_LOCKED/, 'the lock is reported as CKR_PIN_LOCKED');
  });

  t.test('pam_p11: a user not allowed in this container fails', async (t) => {
    // bob is allowed in CTID 102 only: from here his token shows no key, and his password does not log in.
    t.equal(await tokenKeys('slot bob'), '', 'no public object of bob from here');
    const env = pamWorld('bob', 'slot bob', (await tokenKeys('slot alice only-ids=ec1')).replace(/ ec1$/m, ' bob'));
    const r = await pamtester('bob', env, BOB_ELSEWHERE.password);
    t.not(r.status, 0, 'right PIN, container not allowed: refused');
    t.match(r.stdout + r.stderr, /No authorized keys on token/);
    const bobConf = file('bob.conf');
    writeFileSync(bobConf, 'slot bob\n');
    const login = await ctx.run(['pkcs11-tool', '--module', ctx.module, '--slot', '0', '--login', '--pin', BOB_ELSEWHERE.password, '--list-objects'],
      { env: { ...ctx.env, VHSM_PKCS11_CONF: bobConf } });
    t.not(login.status, 0);
    // OpenSC prints CKR_FUNCTION_REJECTED as an unknown code.
    t.match(login.stderr + login.stdout, /C_Login failed: rv = .*\(0x200\)/, 'his password does not log in from here: CKR_FUNCTION_REJECTED');
  });

  t.test('the private key never reaches the client: its files and a core of a process holding a session', async (t) => {
    const started = Date.now();
    // A known P-256 key, made and imported outside the client's scratch dir, then deleted.
    const keyDir = mkdtempSync(join(tmpdir(), 'vhsm-known-key-'));
    let patterns: [string, Buffer][] = [];
    let publicPoint = Buffer.alloc(0);
    try {
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
      writeFileSync(join(keyDir, 'k.der'), pkcs8, { mode: 0o600 });
      const jwk = key.export({ format: 'jwk' });
      const scalar = Buffer.from(jwk.d!, 'base64url');
      publicPoint = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
      const sec1 = key.export({ format: 'der', type: 'sec1' });
      const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
      const sec1Pem = key.export({ format: 'pem', type: 'sec1' }).toString();
      patterns = [
        ['raw scalar', scalar], ['scalar hex', Buffer.from(scalar.toString('hex'))], ['scalar base64', Buffer.from(scalar.toString('base64'))],
        ['PKCS#8 DER', pkcs8], ['SEC1 DER', sec1],
        ['PKCS#8 PEM line', Buffer.from(pem.split('\n')[1]!)], ['SEC1 PEM line', Buffer.from(sec1Pem.split('\n')[1]!)],
      ];
      // The search finds the key where it is (a positive control).
      t.ok(patterns.every(([, p]) => Buffer.concat([Buffer.from('x'), pkcs8, sec1, Buffer.from(pem + sec1Pem + scalar.toString('hex') + scalar.toString('base64'))]).includes(p)));
      await ctx.importKey('known', join(keyDir, 'k.der'));
    } finally {
      rmSync(keyDir, { recursive: true, force: true });
    }
    // Use it: pkcs11-tool signs, and ssh-agent's PKCS#11 helper keeps a logged-in session while we dump its core.
    const signed = await tool(['--login', '--pin', pin, '--sign', '--mechanism', 'ECDSA-SHA256', '--id', hex('known'), '--input-file', file('doc'), '--output-file', file('known.sig')]);
    t.equal(signed.status, 0, `pkcs11-tool signs with the imported key ${signed.stderr}`);
    const { agent, agentPid, agentEnv } = await startAgent(t, 'agent2.sock');
    t.ok(agentPid > 0, `ssh-agent ${agent.stderr}`);
    t.equal((await ctx.run(['ssh-add', '-s', ctx.module], { env: agentEnv })).status, 0, 'ssh-add -s');
    const pub = (await ctx.run(['ssh-add', '-L'], { env: agentEnv })).stdout.split('\n').find((l) => l.endsWith(' known'));
    t.ok(pub, 'the agent holds the imported key');
    writeFileSync(file('known.ssh.pub'), `${pub}\n`);
    const sig = await ctx.run(['ssh-keygen', '-Y', 'sign', '-f', file('known.ssh.pub'), '-n', 'file', file('doc')], { env: agentEnv });
    t.equal(sig.status, 0, `signed through the agent ${sig.stderr}`);
    // ssh-agent's child ssh-pkcs11-helper has the module loaded and the session logged in.
    const helper = Number(readFileSync(`/proc/${agentPid}/task/${agentPid}/children`, 'utf8').trim().split(/\s+/)[0]);
    t.match(readFileSync(`/proc/${helper}/cmdline`, 'utf8'), /ssh-pkcs11-helper/);
    const core = await local(['gcore', '-o', file('helper.core'), String(helper)], { timeoutMs: 300_000 });
    t.equal(core.status, 0, `gcore ${core.stderr}`);
    // The core is of the right process: it holds the key's public point (a positive control).
    t.ok(readFileSync(file(`helper.core.${helper}`)).includes(publicPoint), 'the helper\'s core holds the public key');
    // Every file of the scratch dir (the core included) and what the tests left at the top of /tmp.
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const st = lstatSync(path);
        if (st.isDirectory()) walk(path);
        else if (st.isFile()) files.push(path);
      }
    };
    walk(ctx.dir);
    for (const name of readdirSync('/tmp')) {
      const path = join('/tmp', name);
      try {
        const st = lstatSync(path);
        if (st.isFile() && st.mtimeMs >= started - 1000 && st.size < 256 << 20) files.push(path);
      } catch { /* another process's file, gone */ }
    }
    const leaks: string[] = [];
    for (const path of files) {
      let bytes: Buffer;
      try { bytes = readFileSync(path); } catch { continue; }
      for (const [what, p] of patterns) if (bytes.includes(p)) leaks.push(`${what} in ${path}`);
    }
    t.ok(files.length > 20, `${files.length} files searched`);
    t.same(leaks, [], 'no form of the private key on the client side');
    rmSync(file(`helper.core.${helper}`), { force: true });
  });

  t.test('server killed mid-session: the consumer gets a clean error, nothing hangs', async (t) => {
    // ssh-agent's PKCS#11 helper holds a logged-in session across the kill.
    const { agent, agentPid, agentEnv } = await startAgent(t, 'agent3.sock');
    t.ok(agentPid > 0, `ssh-agent ${agent.stderr}`);
    t.equal((await ctx.run(['ssh-add', '-s', ctx.module], { env: agentEnv })).status, 0, 'ssh-add -s');
    const signArgv = ['ssh-keygen', '-Y', 'sign', '-f', file('ec1.login.pub'), '-n', 'file', file('doc')];
    await local(['rm', '-f', file('doc.sig')]);
    t.equal((await ctx.run(signArgv, { env: agentEnv })).status, 0, 'signs before the kill');
    await local(['rm', '-f', file('doc.sig')]);
    await ctx.killServer();
    const started = Date.now();
    const after = await ctx.run(signArgv, { env: agentEnv, timeoutMs: 120_000 });
    t.not(after.status, 0, `no signature without the server: ${after.stderr.trim()}`);
    t.ok(Date.now() - started < 60_000, `answered in ${Date.now() - started} ms (no hang)`);
    t.equal((await ctx.run(['ssh-add', '-l'], { env: agentEnv, timeoutMs: 60_000 })).status, 0, 'the agent still answers');
    const tool2 = await tool(['--login', '--pin', pin, '--sign', '--mechanism', 'ECDSA-SHA256', '--id', hex('ec1'), '--input-file', file('doc')]);
    t.not(tool2.status, 0, 'pkcs11-tool: refused');
    t.match(tool2.stderr + tool2.stdout, /CKR_TOKEN_NOT_PRESENT|CKR_DEVICE_REMOVED|No slot with a token|token not present/i, `a clean PKCS#11 error: ${tool2.stderr.trim()}`);
    if (!ctx.unloadTransport) return;
    // The kernel module goes too: the helper's netlink socket now leads nowhere.
    ctx.unloadTransport();
    const unloaded = Date.now();
    const gone = await ctx.run(signArgv, { env: agentEnv, timeoutMs: 120_000 });
    t.not(gone.status, 0, `module unloaded: no signature: ${gone.stderr.trim()}`);
    t.ok(Date.now() - unloaded < 60_000, `answered in ${Date.now() - unloaded} ms (no hang)`);
    const slots = await ctx.run(['pkcs11-tool', '--module', ctx.module, '-L'], { env: ctx.env, timeoutMs: 60_000 });
    t.equal(slots.status, 0, `C_Initialize still succeeds without the module ${slots.stderr}`);
    t.match(slots.stdout, /VHSM user alice\n\s+\(empty\)/, 'the slot shows no token');
  });
}
