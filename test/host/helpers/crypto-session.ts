/**
 * Shared setup for the crypto-*.test.ts files: a fixture with alice logged
 * in, and byte helpers.
 */
import type { VhsmSession } from '../../../client/index.js';
import { ALICE, startFixture, type Fixture, type FixtureOptions } from './fixture.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Starts a fixture (closed at teardown) and logs alice in. */
export async function aliceSession(t: Teardown, options: FixtureOptions = {}): Promise<{ fixture: Fixture; session: VhsmSession }> {
  const fixture = await startFixture(options);
  t.teardown(() => fixture.close());
  const session = await (await fixture.client()).login(ALICE.name, ALICE.password);
  return { fixture, session };
}

export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
export const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** A copy of `bytes` with bit `bit` of byte `index` flipped. */
export function flipped(bytes: Uint8Array, index = 0, bit = 0): Buffer {
  const out = Buffer.from(bytes);
  out[index]! ^= 1 << bit;
  return out;
}

/** The uncompressed EC point (04 || x || y) from a JWK. */
export function jwkPoint(jwk: { x?: string; y?: string }): Uint8Array {
  return Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** Message sizes the cross-checks run over: edge cases and random contents. */
export const MESSAGE_SIZES = [0, 1, 55, 64, 1000, 30_000] as const;
