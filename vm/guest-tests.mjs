// Runs inside the VM (see vm/vm.mjs): every dist/test/vm/*.test.js, one at a
// time, each on a clean slate: no vhsm module loaded, no named netns left.
// Writes /tmp/vhsm-out/results.json for the host.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFile, formatResult } from '../scripts/lib/tap-files.mjs';

const dir = 'dist/test/vm';
const only = process.env.VHSM_VM_TESTS ? process.env.VHSM_VM_TESTS.split(',') : null;
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => !only || only.some((o) => f.startsWith(o)))
  .sort()
  .map((f) => join(dir, f));

function cleanSlate() {
  execSync('ip -all netns delete 2>/dev/null; true', { shell: '/bin/sh' });
  if (existsSync('/sys/module/vhsm_transport')) {
    try {
      execSync('rmmod vhsm_transport', { stdio: 'pipe' });
    } catch (e) {
      return `rmmod failed after test: ${e.stderr}`;
    }
  }
  return null;
}

const results = [];
for (const file of files) {
  cleanSlate();
  const r = await runFile(file, { timeoutMs: Number(process.env.VHSM_VM_FILE_TIMEOUT_MS ?? 900_000) });
  const leftover = cleanSlate();
  if (leftover) {
    r.fail += 1;
    r.output += `\n# runner: ${leftover}\n`;
  }
  results.push(r);
  console.log(formatResult(r, '[vm] '));
  if (r.fail || process.env.VHSM_VM_VERBOSE) console.log(r.output.split('\n').map((l) => `[vm]   ${l}`).join('\n'));
}
writeFileSync('/tmp/vhsm-out/results.json', JSON.stringify(results.map(({ output, ...rest }) => ({ ...rest, output: rest.fail ? output : '' }))));
