/**
 * Real LXC in the test VM: vagrant/lxc-demo.sh (the script the Vagrant VM
 * runs too) starts containers vhsm, app1 and app2 with lxc-start, the
 * packaging/lxc/vhsm-bind hook binds them (start-host) and unbinds them
 * (stop), vhsm-server runs in vhsm with the unit's privileges, app1 signs,
 * app2 is refused. Each "ok"/"not ok" line of the script is one assertion.
 *
 * Container roots are overlays over the VM's read-only root with their upper
 * layers in /tmp (tmpfs), so node and the tools are the host's.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModule, unloadModule } from './lib/module.js';
import { repoRoot } from './lib/vhsm-world.js';

const haveLxc = spawnSync('sh', ['-c', 'command -v lxc-start']).status === 0;
if (!haveLxc) {
  t.pass('skipped: LXC is not installed (apt-get install lxc on the host makes it visible in the VM)', { skip: true });
} else {
  const dir = mkdtempSync('/tmp/vhsm-lxc-');
  // The VM boots without systemd: give LXC what systemd would have set up.
  let mountedCgroup = false;
  if (spawnSync('mountpoint', ['-q', '/sys/fs/cgroup']).status !== 0) {
    mountedCgroup = spawnSync('mount', ['-t', 'cgroup2', 'none', '/sys/fs/cgroup']).status === 0;
  }
  if (!existsSync('/dev/fd')) symlinkSync('/proc/self/fd', '/dev/fd');
  writeFileSync(join(dir, 'ctids'), 'vhsm 412\napp1 101\nlxc:app2 102\n');
  loadModule({ vhsm_veid: 412 });
  t.teardown(() => {
    unloadModule();
    rmSync(dir, { recursive: true, force: true });
    if (mountedCgroup) spawnSync('umount', ['/sys/fs/cgroup']);
  });

  t.test('vagrant/lxc-demo.sh with real lxc-start', async (t) => {
    const child = spawn('bash', [join(repoRoot, 'vagrant/lxc-demo.sh')], {
      cwd: repoRoot,
      env: { ...process.env, VHSM_LXC_PATH: join(dir, 'lxc'), VHSM_CTIDS: join(dir, 'ctids') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const lines = out.split('\n');
    let checks = 0;
    lines.forEach((line, i) => {
      const m = /^(ok|not ok) - (.*)$/.exec(line);
      if (!m) return;
      checks += 1;
      const detail = lines.slice(i + 1).filter((l, j, a) => a.slice(0, j + 1).every((x) => x.startsWith('#'))).join('\n');
      t.ok(m[1] === 'ok', `${m[2]}${detail ? `\n${detail}` : ''}`);
    });
    t.ok(checks >= 18, `the script ran all its checks (${checks})`);
    t.match(out, /^\d+ passed, 0 failed$/m, 'and says so');
    t.equal(status, 0, `exit 0${status ? `\n${out}` : ''}`);
  });
}
