/**
 * The `vhsm` CLI when things go wrong, through the module: bad input, bad
 * credentials, the wrong container, unknown keys, a missing server or
 * module. Each must give the documented exit code and a message that says
 * what to do. And the password never shows: not in argv, the environment,
 * the output, nor echoed on a terminal.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { unloadModule } from './lib/module.js';
import { VhsmWorld, repoRoot, toolPath, vhsmCli } from './lib/vhsm-world.js';

const ALICE = { name: 'alice', password: 'alice-Pa55word-7f3e', ctids: [101] };
const CAROL = { name: 'carol', password: 'carol-Pa55word-91aa', ctids: [101] };
const SECRETS = [ALICE.password, CAROL.password];

/** Every process's argv and environment, as the kernel shows them to ps. */
function processTexts(): string {
  let all = '';
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    for (const file of ['cmdline', 'environ']) {
      try {
        all += readFileSync(`/proc/${pid}/${file}`, 'latin1').replace(/\0/g, ' ') + '\n';
      } catch {
        // gone meanwhile
      }
    }
  }
  return all;
}

/** The test VM mounts no devpts; `script` needs one for its pseudo-terminal. */
function ensureDevpts(): void {
  if (existsSync('/dev/pts/ptmx')) return;
  mkdirSync('/dev/pts', { recursive: true });
  execFileSync('mount', ['-t', 'devpts', '-o', 'ptmxmode=0666', 'devpts', '/dev/pts']);
}

/**
 * Runs a shell command line on a pseudo-terminal (util-linux `script`) in
 * netns `ns`, typing `password` once the prompt shows. Resolves everything
 * the terminal displayed and the exit status.
 */
function onTerminal(ns: string, command: string, password: string, typeFirst?: string): Promise<{ status: number | null; screen: string; sawProcess: boolean; leaked: boolean }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, 'script', '-qec', command, '/dev/null'], { cwd: repoRoot, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    let typed = false;
    let sawProcess = false;
    let leaked = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    if (typeFirst !== undefined) child.stdin!.write(typeFirst);
    const onData = (d: Buffer): void => {
      screen += d.toString();
      if (!typed && /Password for \w+: $/.test(screen)) {
        typed = true;
        // While the CLI waits at its prompt: is it visible, and is the password anywhere?
        const texts = processTexts();
        sawProcess = texts.includes(toolPath('vhsm'));
        leaked = SECRETS.some((secret) => texts.includes(secret));
        child.stdin!.write(`${password}\r`);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, screen, sawProcess, leaked });
    });
  });
}

t.test('no module loaded: exit 9, and says so', async (t) => {
  unloadModule();
  const result = await vhsmCli(null, ['login', '--user', 'alice', '--password-stdin', '--json'], { input: 'x\n' });
  t.equal(result.status, 9, 'exit 9');
  t.match(result.stderr, /vhsm_transport kernel module is not loaded/);
  t.match(result.json(), { error: { code: 'ENOENT', exitCode: 9 } }, '--json: the error as one object');
});

t.test('vhsm CLI failures through the module', async (t) => {
  const vw = await VhsmWorld.create({
    clients: { ct101: 101, ct102: 102 },
    users: [ALICE, CAROL],
    // One failed login locks a (user, container) pair: LOCKED_OUT without a long test. (A correct login resets the count.)
    serverConfig: { lockout: { freeAttempts: 1, backoffBaseMs: 60_000, backoffMaxMs: 60_000, lockAfter: 1 } },
  });
  t.teardown(() => vw.destroy());
  vw.world.netns('loose'); // a container nobody bound
  const alice = (args: string[], input?: string | Buffer) => vw.as('alice', 'ct101', args, input === undefined ? {} : { input });
  const data = vw.file('data.bin', Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d]));
  t.equal((await alice(['keys', 'generate', '--type', 'ec-p256', '--id', 'k1'])).status, 0, 'setup: a key');

  await t.test('credentials', async (t) => {
    const wrong = await vw.vhsm('ct101', ['login', '-u', 'carol', '--password-stdin'], { input: 'not-the-password\n' });
    t.equal(wrong.status, 6, 'wrong password: exit 6');
    t.match(wrong.stderr, /login failed for carol: unknown user or wrong password/);
    t.notMatch(wrong.stderr + wrong.out, /not-the-password/, 'the typed password is not echoed');

    const elsewhere = await vw.as('alice', 'ct102', ['login', '--json']);
    t.equal(elsewhere.status, 10, 'right password, container not allowed: exit 10');
    t.match(elsewhere.stderr, /alice may not log in from this container: ask the VHSM admin to run `vhsm-admin user allow alice CTID`/);
    t.match(elsewhere.json(), { error: { code: 'CONTAINER_NOT_ALLOWED', exitCode: 10 } });

    const noTty = await vw.vhsm('ct101', ['login', '-u', 'alice'], { env: { VHSM_PASSWORD: ALICE.password } });
    t.equal(noTty.status, 8, 'no password source and no terminal (VHSM_PASSWORD is no source): exit 8');
    t.match(noTty.stderr, /no TTY to prompt on: use --password-file FILE or --password-stdin/);
    const noUser = await vw.vhsm('ct101', ['login', '--password-stdin'], { input: 'x\n' });
    t.equal(noUser.status, 2, 'no user: exit 2');
    t.match(noUser.stderr, /no user: give --user NAME or set VHSM_USER/);
    const argvPassword = await vw.vhsm('ct101', ['login', '-u', 'alice', '--password', ALICE.password]);
    t.equal(argvPassword.status, 2, 'a password in argv is refused: exit 2');
    t.notMatch(argvPassword.stderr, ALICE.password, 'and not repeated in the message');
    t.match(argvPassword.stderr, /never taken from the command line/);
  });

  await t.test('locked out after a failed login: says who can unlock', async (t) => {
    // carol's wrong password above was her one allowed failure in ct101.
    const locked = await vw.as('carol', 'ct101', ['login', '--json']);
    t.equal(locked.status, 11, 'locked out, even with the right password: exit 11');
    t.match(locked.stderr, /carol is locked out of this container .*: ask the VHSM admin to run `vhsm-admin user unlock carol`/);
    t.match(locked.json(), { error: { code: 'LOCKED_OUT', exitCode: 11 } });
    t.equal((await vw.admin(['user', 'unlock', 'carol'])).status, 0, 'vhsm-admin user unlock carol');
  });

  await t.test('keys and operations the server refuses', async (t) => {
    const unknown = await alice(['sign', 'no-such-key', '--in', data]);
    t.equal(unknown.status, 4, 'unknown key: exit 4');
    t.match(unknown.stderr, /no key 'no-such-key' for alice: `vhsm keys list` shows the keys/);
    const exists = await alice(['keys', 'generate', '--type', 'ed25519', '--id', 'k1']);
    t.equal(exists.status, 5, 'a taken key id: exit 5');
    t.match(exists.stderr, /key 'k1' already exists/);
    const export1 = await alice(['keys', 'export', 'k1', '--format', 'pkcs8-der']);
    t.equal(export1.status, 12, 'export of a non-extractable key: exit 12');
    t.match(export1.stderr, /was not created extractable/);
    const badType = await alice(['keys', 'generate', '--type', 'rsa-1024']);
    t.equal(badType.status, 2, 'an unknown key type: exit 2');
    t.match(badType.stderr, /Invalid values:[\s\S]*Given: "rsa-1024", Choices: "ec-p256", "ed25519"/);
  });

  await t.test('bad input: files, encodings, sizes', async (t) => {
    const missing = await alice(['sign', 'k1', '--in', `${vw.dir}/missing.bin`]);
    t.equal(missing.status, 14, 'a missing --in file: exit 14');
    t.match(missing.stderr, /cannot read data file .*missing\.bin: no such file/);
    const dirOut = await alice(['digest', '--in', data, '--out', `${vw.dir}/no/such/dir/out`]);
    t.equal(dirOut.status, 14, 'an --out in a missing directory: exit 14');
    t.match(dirOut.stderr, /cannot write .*: no such directory/);

    const notHex = await alice(['verify', 'k1', '--in', data, '--sig', vw.file('bad.hex', 'this is not hex\n'), '--json']);
    t.equal(notHex.status, 2, 'a --sig file that is not hex: exit 2');
    t.match(notHex.json(), { error: { code: 'BAD_INPUT', message: /the signature is not valid hex/ } });
    const notB64 = await alice(['digest', '--in-encoding', 'base64'], 'not*base64!');
    t.equal(notB64.status, 2, 'data that is not base64: exit 2');
    t.match(notB64.stderr, /data is not valid base64/);
    const tooBig = await alice(['sign', 'k1', '--in', vw.file('big.bin', Buffer.alloc(40_000, 7))]);
    t.equal(tooBig.status, 2, 'data over the 32 KiB request limit for a one-message operation (digest and mac stream): exit 2');
    t.match(tooBig.stderr, /at most 32768 bytes/);
    const twoStdins = await vw.vhsm('ct101', ['-u', 'alice', '--password-stdin', 'digest'], { input: `${ALICE.password}\nsome data` });
    t.equal(twoStdins.status, 2, 'password and data both on stdin: exit 2');
    t.match(twoStdins.stderr, /only one input can come from standard input/);
    const raw = await alice(['digest', '--in', data, '--encoding', 'raw']);
    t.same(raw.stdout, createHash('sha256').update(readFileSync(data)).digest(), 'binary-safe: raw digest of binary data on stdout');
  });

  await t.test('the password is never in argv, the environment or the output', async (t) => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    let during = '';
    let visible = false;
    const running = vw.vhsm('ct101', ['login', '-u', 'alice', '--password-stdin'], {
      input: `${ALICE.password}\n`,
      holdStdin: hold,
      onSpawn: () => {
        // The CLI is running with the password sitting in its stdin pipe: look at every process.
        const poll = (): void => {
          during = processTexts();
          visible = during.includes(toolPath('vhsm'));
          if (visible) release();
          else setTimeout(poll, 50);
        };
        poll();
      },
    });
    const result = await running;
    t.ok(visible, 'the vhsm process was seen in /proc');
    t.notOk(SECRETS.some((secret) => during.includes(secret)), 'no password in any argv or environment');
    t.equal(result.status, 0, 'the login worked');
    t.notOk(SECRETS.some((secret) => result.out.includes(secret) || result.stderr.includes(secret)), 'nor in its output');

    ensureDevpts();
    const prompt = await onTerminal('ct101', `${process.execPath} ${toolPath('vhsm')} login -u alice`, ALICE.password);
    t.equal(prompt.status, 0, `terminal prompt: login ok (${prompt.screen})`);
    t.match(prompt.screen, /Password for alice: /);
    t.notOk(prompt.screen.includes(ALICE.password), 'the typed password is not echoed');
    t.ok(prompt.sawProcess && !prompt.leaked, 'not in any argv or environment while the prompt waits');
    const piped = await onTerminal('ct101', `printf 'hello' | ${process.execPath} ${toolPath('vhsm')} digest -u alice`, ALICE.password);
    t.equal(piped.status, 0, 'data on stdin, password from the terminal (/dev/tty)');
    t.match(piped.screen, createHash('sha256').update('hello').digest('hex'));
    t.notOk(piped.screen.includes(ALICE.password), 'not echoed either');
    const typed = await onTerminal('ct101', `${process.execPath} ${toolPath('vhsm')} digest -u alice`, ALICE.password, 'typed\x04\x04');
    t.equal(typed.status, 0, 'data typed on the terminal (ended by Ctrl-D), then the password prompt');
    t.match(typed.screen, createHash('sha256').update('typed').digest('hex'));
    t.notOk(typed.screen.includes(ALICE.password), 'not echoed');
    t.notOk(SECRETS.some((secret) => vw.serverLog.includes(secret)), 'nor in the server log');
  });

  await t.test('transport: an unbound container, then no server', async (t) => {
    const loose = await vw.vhsm('loose', ['login', '-u', 'alice', '--password-stdin'], { input: `${ALICE.password}\n` });
    t.equal(loose.status, 9, 'a container not bound to a CTID: exit 9');
    t.match(loose.stderr, /this container is not bound to a CTID: ask the host admin to run `vhsmctl bind/);
    t.equal(await vw.stopServer(), 0, 'vhsm-server stops cleanly on SIGTERM');
    const noServer = await alice(['login', '--json']);
    t.equal(noServer.status, 9, 'no server: exit 9');
    t.match(noServer.stderr, /no VHSM server registered: is vhsm-server running/);
    t.match(noServer.json(), { error: { code: 'ECONNREFUSED', exitCode: 9 } });
  });
});
