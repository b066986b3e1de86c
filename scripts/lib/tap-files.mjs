// Runs tap test files as plain node processes (tap prints TAP and a final
// "# { total, pass, fail }" line when a file runs on its own) and collects
// the counts. Used on the host and, through vm/guest-tests.mjs, in the VM.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';

const SUMMARY = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?/m;

/** Runs one file; resolves { file, status, pass, fail, skip, seconds, output }. */
export function runFile(file, { env = {}, timeoutMs = 600_000, cwd = process.cwd(), before } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [file], {
      cwd,
      // tap's own per-file timeout (30 s by default) would cut long kernel tests short.
      env: { TAP_TIMEOUT: String(Math.ceil(timeoutMs / 1000)), ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n# runner: killed after ${timeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const m = SUMMARY.exec(output);
      const pass = m ? Number(m[2]) : 0;
      let fail = m ? Number(m[3] ?? 0) : 0;
      // A crash, a timeout or a missing summary is a failure of its own.
      if (status !== 0 && fail === 0) fail = 1;
      resolve({
        file,
        name: basename(file).replace(/\.test\.js$/, ''),
        status: status ?? (signal ? 128 : 1),
        pass,
        fail,
        skip: m ? Number(m[4] ?? 0) : 0,
        seconds: (Date.now() - started) / 1000,
        output,
      });
    });
    before?.(child);
  });
}

/** Runs files with bounded concurrency, reporting each as it ends. */
export async function runFiles(files, { concurrency = 1, onResult, ...options } = {}) {
  const results = [];
  const queue = [...files];
  async function worker() {
    while (queue.length) {
      const file = queue.shift();
      const result = await runFile(file, options);
      results.push(result);
      onResult?.(result);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return results.sort((a, b) => a.file.localeCompare(b.file));
}

/** One line per file for humans. */
export function formatResult(r, prefix = '') {
  const mark = r.fail ? 'FAIL' : 'ok  ';
  return `${prefix}${mark} ${r.name.padEnd(28)} ${String(r.pass).padStart(6)} passed ${String(r.fail).padStart(3)} failed  ${r.seconds.toFixed(1)} s`;
}
