/**
 * The PKCS#11 module's C unit tests (pkcs11/test/unit.c: DER reader,
 * configuration, attributes, reply decoding, error mapping, entry points,
 * fork), one tap assertion per C test; the shipped module's exports; and the
 * canonical encoding of every request the module sends, checked with the
 * server's own strict decoder.
 */
import t from 'tap';
import { join } from 'node:path';
import { decodeRequest } from '../../proto/index.js';
import { p11Build, p11Module, parseTap, run } from './helpers/p11.js';

t.test('C unit tests', async (t) => {
  const r = await run([join(p11Build, 'unit-tests')], { timeoutMs: 60_000 });
  const { results, planned } = parseTap(r.stdout);
  t.ok(results.length > 50, `the unit test program ran (${results.length} tests)`);
  t.equal(results.length, planned, 'every planned test reported');
  for (const result of results) t.ok(result.ok, result.name);
  t.equal(r.status, 0, `exit status 0 ${r.stderr}`);
});

t.test('the shipped module exports the PKCS#11 entry points and nothing else', async (t) => {
  const r = await run(['nm', '-D', '--defined-only', p11Module]);
  const symbols = r.stdout.split('\n').map((l) => l.split(' ').pop()).filter((s) => s).sort();
  t.same(symbols, ['C_GetFunctionList', 'C_GetInterface', 'C_GetInterfaceList']);
  const strings = await run(['strings', p11Module]);
  t.notMatch(strings.stdout, /VHSM_PKCS11_TEST_SOCKET/, 'no test transport in the shipped module');
});

t.test('every request the module builds is canonical protobuf (the server decodes it strictly)', async (t) => {
  const r = await run([join(p11Build, 'encode-requests')]);
  t.equal(r.status, 0);
  const lines = r.stdout.trim().split('\n');
  t.ok(lines.length >= 25, `${lines.length} requests`);
  for (const line of lines) {
    const [name, hex] = line.split(' ');
    t.doesNotThrow(() => decodeRequest(Buffer.from(hex!, 'hex')), `${name}: canonical`);
  }
});
