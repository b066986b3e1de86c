/**
 * The protocol module: the string-name tables match the .proto enums, the
 * Request/Response oneofs match the handler table, strict decoding, and the
 * validation layer in isolation.
 */
import t from 'tap';
import {
  DIGEST_ALGORITHMS,
  ERROR_CODES,
  KEY_FORMATS,
  KEY_TYPES,
  KEY_USAGES,
  MAC_ALGORITHMS,
  OPERATIONS,
  PROTOCOL_VERSION,
  ProtocolDecodeError,
  PUBLIC_KEY_FORMATS,
  SIGNATURE_ALGORITHMS,
  SIGNATURE_ENCODINGS,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  uint64ToSafeNumber,
  v1,
} from '../../proto/index.js';
import { HANDLERS } from '../../server/handlers/index.js';
import { VhsmFailure } from '../../server/errors.js';
import { validateRequest } from '../../server/validate.js';

/** The generated enum object without its UNSPECIFIED member, names stripped of the prefix. */
function generatedEnum(values: object, prefix: string, mapName: (name: string) => string = (name) => name): Record<string, number> {
  return Object.fromEntries(
    Object.entries(values)
      .filter(([name]) => !name.endsWith('_UNSPECIFIED'))
      .map(([name, value]) => [mapName(name.slice(prefix.length)), value as number]),
  );
}
const lowerDash = (name: string): string => name.toLowerCase().replace(/_/g, '-');

t.test('name tables mirror the .proto enums exactly', async (t) => {
  t.same(generatedEnum(v1.ErrorCode, 'ERROR_CODE_'), ERROR_CODES, 'ErrorCode');
  t.same(generatedEnum(v1.KeyType, 'KEY_TYPE_', lowerDash), KEY_TYPES, 'KeyType');
  t.same(generatedEnum(v1.KeyUsage, 'KEY_USAGE_', lowerDash), KEY_USAGES, 'KeyUsage');
  t.same(generatedEnum(v1.SignatureAlgorithm, 'SIGNATURE_ALGORITHM_', lowerDash), SIGNATURE_ALGORITHMS, 'SignatureAlgorithm');
  t.same(generatedEnum(v1.SignatureEncoding, 'SIGNATURE_ENCODING_', lowerDash), SIGNATURE_ENCODINGS, 'SignatureEncoding');
  t.same(generatedEnum(v1.MacAlgorithm, 'MAC_ALGORITHM_', lowerDash), MAC_ALGORITHMS, 'MacAlgorithm');
  t.same(generatedEnum(v1.DigestAlgorithm, 'DIGEST_ALGORITHM_', lowerDash), DIGEST_ALGORITHMS, 'DigestAlgorithm');
  t.same(generatedEnum(v1.KeyFormat, 'KEY_FORMAT_', lowerDash), KEY_FORMATS, 'KeyFormat');
  t.same(generatedEnum(v1.PublicKeyFormat, 'PUBLIC_KEY_FORMAT_', lowerDash), PUBLIC_KEY_FORMATS, 'PublicKeyFormat');
});

t.test('every operation has a handler and a same-named result', async (t) => {
  t.same(Object.keys(HANDLERS).sort(), [...OPERATIONS].sort(), 'handler table covers every op');
  for (const op of OPERATIONS) {
    const request = decodeRequest(encodeRequest({ version: 1, id: 1, [op]: {} }));
    t.equal(request.op, op, `Request.${op} decodes as op ${op}`);
    const response = decodeResponse(encodeResponse({ version: 1, id: 1, [op]: {} }));
    t.equal(response.result, op, `Response.${op} exists`);
  }
  const sessionless = OPERATIONS.filter((op) => !HANDLERS[op].needsSession);
  t.same(sessionless, ['login', 'listPublicObjects'], 'only login and the public-object listing work without a session');
});

t.test('strict request decoding', async (t) => {
  const bytes = encodeRequest({ version: PROTOCOL_VERSION, id: 42, digest: { data: Uint8Array.of(1, 2) } });
  const request = decodeRequest(bytes);
  t.equal(uint64ToSafeNumber(request.id), 42);
  t.same(Buffer.from(request.digest!.data!), Buffer.of(1, 2));
  t.throws(() => decodeRequest(Buffer.concat([bytes, Uint8Array.of(0xa0, 0x06, 0x00)])), ProtocolDecodeError, 'unknown field 100');
  t.throws(() => decodeRequest(Buffer.concat([bytes, Uint8Array.of(0x08, 0x01)])), ProtocolDecodeError, 'duplicate field');
  t.throws(() => decodeRequest(new Uint8Array(32 * 1024 + 1)), ProtocolDecodeError, 'over 32 KiB');
  t.equal(uint64ToSafeNumber(2 ** 53), null, '2^53 is not a safe id');
  t.equal(uint64ToSafeNumber({ high: 0x1fffff, low: 0xffffffff, toNumber: () => 0 }), 2 ** 53 - 1, 'largest safe Long');
});

t.test('validation', async (t) => {
  const check = (request: Parameters<typeof encodeRequest>[0]): string => {
    try {
      validateRequest(decodeRequest(encodeRequest({ version: 1, id: 1, ...request })));
      return 'OK';
    } catch (error) {
      return error instanceof VhsmFailure ? error.code : String(error);
    }
  };
  const session = new Uint8Array(16).fill(1);
  t.equal(check({ login: { username: 'alice', password: Buffer.from('x') } }), 'OK');
  t.equal(check({ login: { username: 'a'.repeat(64), password: Buffer.alloc(1024, 1) } }), 'OK', 'limits are inclusive');
  t.equal(check({ login: { username: 'Ωmega', password: Buffer.from('x') } }), 'INVALID_ARGUMENT', 'non-ASCII username');
  t.equal(check({ session, generateKey: { spec: { type: 1, keyId: 'A'.repeat(64), label: 'é'.repeat(64) } } }), 'OK', '64-char id, 128-byte label');
  t.equal(check({ session, generateKey: { spec: { type: 1, label: 'é'.repeat(65) } } }), 'INVALID_ARGUMENT', '130-byte label');
  t.equal(check({ session, generateKey: { spec: { type: 1, keyId: '-leading' } } }), 'INVALID_ARGUMENT', 'id must start alphanumeric');
  t.equal(check({ session, generateKey: { spec: { type: 1, usages: [1, 1, 2] } } }), 'OK', 'duplicate usages are fine');
  t.equal(check({ session, sign: { keyId: 'k', data: new Uint8Array(0) } }), 'OK', 'empty data may be signed');
  t.equal(check({ session, verifyMac: { keyId: 'k', mac: new Uint8Array(64) } }), 'OK');
  t.equal(check({ version: 3, digest: {} } as never), 'UNSUPPORTED_VERSION');
  const valid = validateRequest(decodeRequest(encodeRequest({ version: 1, id: 9, session, generateKey: { spec: { type: 3, usages: [8, 8] } } })));
  t.same(valid.op === 'generateKey' && valid.spec.usages, [8], 'usages deduplicated');
  t.equal(valid.id, 9);
});
