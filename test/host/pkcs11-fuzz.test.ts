/**
 * libFuzzer (clang -fsanitize=fuzzer,address,undefined) over the module's
 * reply decoding, DER reader, configuration parser and attribute templates
 * (pkcs11/fuzz/fuzz_reply.c), for a bounded time from the committed seeds.
 * VHSM_FUZZ_SECONDS overrides the default 60 s.
 */
import t from 'tap';
import { run } from './helpers/p11.js';

const seconds = Number(process.env.VHSM_FUZZ_SECONDS ?? 60);

t.test(`fuzz the reply decoder and attribute handling for ${seconds} s`, async (t) => {
  const r = await run(['make', '-s', '-C', 'pkcs11', 'fuzz', `FUZZ_SECONDS=${seconds}`], { timeoutMs: (seconds + 240) * 1000 });
  const runs = /Done (\d+) runs in/.exec(r.stderr);
  t.ok(runs, `libFuzzer finished (${runs?.[1] ?? 0} runs)`);
  t.ok(Number(runs?.[1] ?? 0) > 1000, 'it ran a meaningful number of inputs');
  t.notMatch(r.stderr, /ERROR: (AddressSanitizer|libFuzzer)|runtime error:/, 'no sanitizer report');
  t.equal(r.status, 0, r.stderr.split('\n').slice(-15).join('\n'));
});
