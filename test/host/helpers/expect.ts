/**
 * Assertion helpers shared by the host tests.
 */
import { VhsmError } from '../../../client/index.js';

/** The part of tap's Test these helpers need. */
export interface Asserter {
  equal(found: unknown, wanted: unknown, message: string): boolean;
  fail(message: string): boolean;
}

/** Asserts that `promise` rejects with a VhsmError carrying `code`. */
export async function expectCode(t: Asserter, promise: Promise<unknown>, code: string, message: string): Promise<void> {
  try {
    await promise;
    t.fail(`${message}: expected ${code}, but it succeeded`);
  } catch (error) {
    t.equal(error instanceof VhsmError ? error.code : String(error), code, `${message} → ${code}`);
  }
}
