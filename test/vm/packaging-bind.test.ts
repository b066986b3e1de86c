/**
 * The container bind scripts in packaging/ against the real module, with
 * network namespaces standing in for containers: the LXC hook run the way
 * LXC runs it (both hook calling conventions, start-host and stop), the
 * Docker script with a fake `docker` on PATH, the systemd-nspawn script with
 * a fake `machinectl`. Every binding is checked in the module's own list.
 */
import t from 'tap';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VhsmAdmin } from '../../transport/netlink-admin.js';
import { loadModule, unloadModule } from './lib/module.js';
import { createNetns, deleteNetns } from './lib/netns.js';
import { repoRoot } from './lib/vhsm-world.js';

const dir = mkdtempSync('/tmp/vhsm-bind-');
const bin = join(dir, 'bin');
const ctids = join(dir, 'ctids');
mkdirSync(bin);
const script = (name: string, body: string): void => {
  writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, name), 0o755);
};
// vhsmctl as installed (/usr/local/bin/vhsmctl), here from the checkout.
script('vhsmctl', `exec ${process.execPath} ${join(repoRoot, 'dist/tools/vhsmctl.js')} "$@"`);
// A fake docker: the answers come from files in $FAKE.
const fake = join(dir, 'fake');
mkdirSync(fake);
script(
  'docker',
  `f=${fake}
echo "$*" >> $f/calls
case "$1 $2 $3" in
  "inspect -f {{.State.Pid}}") cat "$f/$4.pid" 2>/dev/null || { echo "Error: No such object: $4" >&2; exit 1; } ;;
  "inspect -f {{index .Config.Labels \\"vhsm.ctid\\"}}") cat "$f/$4.label" 2>/dev/null || echo "<no value>" ;;
  "ps --format {{.Names}}"*) cat "$f/running" ;;
  events*) cat "$f/events" ;;
  *) echo "fake docker: unexpected: $*" >&2; exit 9 ;;
esac`,
);
script(
  'machinectl',
  `case "$1 $2 $3 $4" in
  "show -p Leader --value") cat "${fake}/machine-$5.pid" 2>/dev/null || { echo "Machine '$5' not known" >&2; exit 1; } ;;
  *) echo "fake machinectl: unexpected: $*" >&2; exit 9 ;;
esac`,
);
writeFileSync(
  ctids,
  `# test map
app1      101   # a comment
lxc:app2  102
app2      199
docker:web 103
machine:m1 104
`,
);

const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, VHSM_CTIDS: ctids };
interface Run {
  status: number | null;
  out: string;
}
function sh(argv: string[], extra: Record<string, string> = {}): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { ...env, ...extra }, encoding: 'utf8', cwd: repoRoot });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const hook = join(repoRoot, 'packaging/lxc/vhsm-bind');
const dockerBind = join(repoRoot, 'packaging/docker/vhsm-docker-bind');
const machineBind = join(repoRoot, 'packaging/nspawn/vhsm-machine-bind');

// "Containers": a named netns each, with a process inside (the container's init).
const processes: ChildProcess[] = [];
function container(name: string): { pid: number; ino: number; ns: string } {
  const ns = createNetns(name);
  const child = spawn('ip', ['netns', 'exec', name, 'sleep', '3600'], { stdio: 'ignore' });
  processes.push(child);
  return { pid: child.pid!, ino: statSync(ns).ino, ns };
}
async function waitInNetns(pid: number, ino: number): Promise<void> {
  // ip netns exec forks and setns()es before exec: wait until the pid is in the namespace.
  for (let i = 0; i < 200; i++) {
    try {
      if (statSync(`/proc/${pid}/ns/net`).ino === ino) return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pid ${pid} never entered netns ${ino}`);
}

loadModule({ vhsm_veid: 412 });
const admin = await VhsmAdmin.open();
const boundIno = async (ctid: number): Promise<number | undefined> => (await admin.list()).find((b) => b.ctid === ctid)?.netnsIno;
const names = ['app1', 'app2', 'app3', 'web', 'lab', 'm1'];
t.teardown(async () => {
  for (const p of processes) p.kill('SIGKILL');
  await admin.close();
  for (const n of names) {
    try {
      deleteNetns(n);
    } catch {
      // not created
    }
  }
  unloadModule();
  rmSync(dir, { recursive: true, force: true });
});

const app1 = container('app1');
const app2 = container('app2');
const app3 = container('app3');
for (const c of [app1, app2, app3]) await waitInNetns(c.pid, c.ino);

t.test('LXC hook, start-host, hook version 1 (environment)', async (t) => {
  const lxc = { LXC_NAME: 'app1', LXC_HOOK_TYPE: 'start-host', LXC_HOOK_VERSION: '1', LXC_PID: String(app1.pid) };
  const r = sh([hook], lxc);
  t.equal(r.status, 0, `exit 0: ${r.out}`);
  t.equal(await boundIno(101), app1.ino, 'CTID 101 (map: "app1 101") is bound to app1\'s netns');
  t.equal(sh([hook], lxc).status, 0, 'running it again (same netns) is fine');
});

t.test('LXC hook, start-host, hook version 0 (NAME SECTION TYPE as arguments)', async (t) => {
  const r = sh([hook, 'app2', 'lxc', 'start-host'], { LXC_PID: String(app2.pid) });
  t.equal(r.status, 0, `exit 0: ${r.out}`);
  t.equal(await boundIno(102), app2.ino, '"lxc:app2 102" wins over "app2 199"');
  t.equal(await boundIno(199), undefined, 'and 199 is not used');
});

t.test('LXC hook: --ctid on the hook line, --optional, refusals', async (t) => {
  let r = sh([hook, '--ctid', '105'], { LXC_NAME: 'app3', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app3.pid) });
  t.equal(r.status, 0, `--ctid 105: exit 0: ${r.out}`);
  t.equal(await boundIno(105), app3.ino, '--ctid overrides the map');

  r = sh([hook], { LXC_NAME: 'nomap', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app3.pid) });
  t.equal(r.status, 1, 'a container without a CTID fails to start');
  t.match(r.out, /no CTID: add "nomap N"/, 'and the message says how to give it one');
  r = sh([hook, '--optional'], { LXC_NAME: 'nomap', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app3.pid) });
  t.equal(r.status, 0, '--optional: it starts unbound');

  r = sh([hook, '--ctid', '106'], { LXC_NAME: 'hostnet', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(process.pid) });
  t.equal(r.status, 1, 'a container sharing the host\'s netns is refused');
  t.match(r.out, /shares the host's network namespace/);
  t.equal(await boundIno(106), undefined, 'and nothing is bound');

  r = sh([hook, '--ctid', '107'], { LXC_NAME: 'clash', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app1.pid) });
  t.equal(r.status, 1, 'a netns that has another CTID: the kernel says EEXIST, the container fails to start');
  t.match(r.out, /vhsmctl bind --ctid 107 --pid \d+ failed/);

  r = sh([hook, '--ctid', '0'], { LXC_NAME: 'zero', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app3.pid) });
  t.equal(r.status, 1, 'CTID 0 is refused before asking the kernel');
  r = sh([hook], { LXC_NAME: 'app1', LXC_HOOK_TYPE: 'mount' });
  t.equal(r.status, 1, 'another hook type is a configuration error');
  t.match(r.out, /use me as lxc.hook.start-host and lxc.hook.stop/);

  writeFileSync(join(dir, 'broken'), 'app1 101\napp9 ninety\n');
  r = sh([hook], { LXC_NAME: 'app1', LXC_HOOK_TYPE: 'start-host', LXC_PID: String(app1.pid), VHSM_CTIDS: join(dir, 'broken') });
  t.equal(r.status, 1, 'a broken map file fails');
  t.match(r.out, /broken:2: expected "NAME CTID"/, 'naming the line');
});

t.test('LXC hook, stop: unbinds only the namespace that is stopping', async (t) => {
  // LXC passes the stopping container's netns as LXC_NET_NS (an fd it holds).
  let r = sh([hook], { LXC_NAME: 'app3', LXC_HOOK_TYPE: 'stop', LXC_NET_NS: app1.ns }); // app3 is mapped to nothing
  t.equal(r.status, 1, 'stop of a container without CTID: same error as start');
  r = sh([hook, '--ctid', '105'], { LXC_NAME: 'app3', LXC_HOOK_TYPE: 'stop', LXC_NET_NS: app1.ns });
  t.equal(r.status, 0, 'CTID 105 is bound to another namespace than the stopping one');
  t.match(r.out, /bound to another namespace/);
  t.equal(await boundIno(105), app3.ino, 'so it is left alone');
  r = sh([hook, '--ctid', '105'], { LXC_NAME: 'app3', LXC_HOOK_TYPE: 'stop', LXC_NET_NS: app3.ns });
  t.equal(r.status, 0, `stop: exit 0: ${r.out}`);
  t.equal(await boundIno(105), undefined, 'CTID 105 is gone from vhsmctl list');
  r = sh([hook, 'app1', 'lxc', 'stop'], { LXC_NET_NS: app1.ns });
  t.equal(r.status, 0, 'hook version 0 stop');
  t.equal(await boundIno(101), undefined, 'CTID 101 unbound');
  r = sh([hook, 'app1', 'lxc', 'post-stop'], {});
  t.equal(r.status, 0, 'post-stop of an already unbound container is fine');
  t.match(r.out, /not bound/);
});

t.test('a binding also dies with its namespace, without any hook', async (t) => {
  t.equal(await boundIno(102), app2.ino, 'app2 still bound');
  processes[1]!.kill('SIGKILL');
  deleteNetns('app2');
  for (let i = 0; i < 100 && (await boundIno(102)) !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(await boundIno(102), undefined, 'netns deleted: CTID 102 gone');
  const r = sh([hook, 'app2', 'lxc', 'stop'], {});
  t.equal(r.status, 0, 'and the stop hook after it does not mind');
});

t.test('Docker: vhsm-docker-bind with a fake docker', async (t) => {
  const web = container('web');
  const lab = container('lab');
  await waitInNetns(web.pid, web.ino);
  await waitInNetns(lab.pid, lab.ino);
  writeFileSync(join(fake, 'web.pid'), `${web.pid}\n`);
  writeFileSync(join(fake, 'lab.pid'), `${lab.pid}\n`);
  writeFileSync(join(fake, 'lab.label'), '108\n');
  writeFileSync(join(fake, 'plain.pid'), `${app3.pid}\n`);
  writeFileSync(join(fake, 'hostnet.pid'), `${process.pid}\n`);
  writeFileSync(join(fake, 'hostnet.label'), '109\n');

  let r = sh([dockerBind, 'bind', 'web']);
  t.equal(r.status, 0, `bind web: ${r.out}`);
  t.equal(await boundIno(103), web.ino, '"docker:web 103": bound through docker inspect\'s .State.Pid');
  r = sh([dockerBind, 'bind', 'plain']);
  t.equal(r.status, 0, 'a container with no CTID is left alone (exit 0)');
  t.match(r.out, /no CTID/);
  r = sh([dockerBind, 'bind', 'hostnet']);
  t.equal(r.status, 1, '--network host is refused');
  t.match(r.out, /shares the host's network namespace/);
  r = sh([dockerBind, 'bind', 'gone']);
  t.equal(r.status, 1, 'an unknown container: exit 1');
  t.equal(sh([dockerBind, 'frobnicate']).status, 2, 'bad usage: exit 2');

  r = sh([dockerBind, 'unbind', 'web']);
  t.equal(r.status, 0, 'unbind web');
  t.equal(await boundIno(103), undefined, 'CTID 103 gone');

  // watch: sync the running ones, then follow the event stream.
  writeFileSync(join(fake, 'running'), 'web\nplain\n');
  writeFileSync(join(fake, 'events'), 'lab start\nweb die\nhostnet start\nlab die\nlab start\n');
  writeFileSync(join(fake, 'calls'), '');
  r = sh([dockerBind, 'watch']);
  t.equal(r.status, 1, 'watch ends with an error when the event stream ends (systemd restarts it)');
  t.match(r.out, /docker events ended/);
  t.match(r.out, /web: bound CTID 103/, 'sync bound web');
  t.match(r.out, /lab: bound CTID 108/, 'start event bound lab through its label vhsm.ctid');
  t.match(r.out, /web: unbound CTID 103/, 'die event unbound web');
  t.match(r.out, /hostnet: process \d+ shares the host's network namespace/, 'one bad container does not stop the others');
  t.equal(await boundIno(103), undefined, 'end state: web unbound');
  t.equal(await boundIno(108), lab.ino, 'end state: lab bound (die, then start again)');
  const calls = execFileSync('cat', [join(fake, 'calls')], { encoding: 'utf8' });
  t.match(calls, /events --since \d+ --filter type=container --filter event=start --filter event=die/, 'events replayed from before the sync');
});

t.test('systemd-nspawn: vhsm-machine-bind with a fake machinectl', async (t) => {
  const m1 = container('m1');
  await waitInNetns(m1.pid, m1.ino);
  writeFileSync(join(fake, 'machine-m1.pid'), `${m1.pid}\n`);
  let r = sh([machineBind, 'bind', 'm1']);
  t.equal(r.status, 0, `bind m1: ${r.out}`);
  t.equal(await boundIno(104), m1.ino, '"machine:m1 104": bound through machinectl show -p Leader');
  r = sh([machineBind, 'unbind', 'm1']);
  t.equal(r.status, 0, 'unbind m1');
  t.equal(await boundIno(104), undefined, 'CTID 104 gone');
  r = sh([machineBind, 'bind', 'nomap']);
  t.equal(r.status, 1, 'a machine without CTID fails (the drop-in applies only to machines that have one)');
});
