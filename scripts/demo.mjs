#!/usr/bin/env node
// npm run demo: installs what is missing, builds, boots a VM with Debian's
// kernel (this host cannot load modules), and runs scripts/demo-guest.sh in
// it: three containers, the module, the server, a key that signs in one
// container and is refused in another, the audit log.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runInVm, defaultKernel, pruneRuns, repoRoot } from '../vm/vm.mjs';

const say = (s) => process.stdout.write(`${s}\n`);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
const started = Date.now();

say('== VHSM demo: preparing (installs on first run, then builds)');
run('bash', ['scripts/setup.sh']);
run('npm', ['run', '-s', 'build']);
const kver = defaultKernel();
if (!kver) {
  say('!! no Debian kernel installed; scripts/setup.sh should have installed linux-image-amd64');
  process.exit(1);
}
run('make', ['-s', '-C', 'kernel', `KVER=${kver}`]);
const moduleDir = join(repoRoot, '.vm', 'modules', kver);
mkdirSync(moduleDir, { recursive: true });
copyFileSync(join(repoRoot, 'kernel', 'vhsm_transport.ko'), join(moduleDir, 'vhsm_transport.ko'));
pruneRuns(4);

say(`== booting Debian ${kver} under QEMU (software emulation: everything inside is ~30x slower)`);
let dots = 0;
const result = await runInVm({
  kernel: kver,
  command: 'bash scripts/demo-guest.sh',
  env: { VHSM_MODULE: join(moduleDir, 'vhsm_transport.ko') },
  timeoutSec: 600,
  onBootProgress: (phase, s) => {
    if (phase === 'booted') say(`\n   booted in ${s.toFixed(1)} s`);
    else if (++dots % 2 === 0) process.stdout.write('.');
  },
  onOutput: (s) => process.stdout.write(s),
});
const seconds = ((Date.now() - started) / 1000).toFixed(0);
if (result.status === 0 && result.problems.length === 0) {
  say(`== demo passed in ${seconds} s (kernel log clean)`);
  process.exit(0);
}
say(`!! demo failed (status ${result.status}${result.timedOut ? ', timed out' : ''}) after ${seconds} s; logs in ${result.outDir}`);
for (const line of result.problems) say(`   kernel log: ${line}`);
process.exit(1);
