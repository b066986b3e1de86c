/**
 * The one exception type handlers throw to answer with a protocol error.
 * Anything else that escapes a handler becomes INTERNAL, and its detail goes
 * only to the server log.
 */
import type { ErrorCodeName } from '../proto/index.js';

export class VhsmFailure extends Error {
  override readonly name = 'VhsmFailure';
  constructor(
    readonly code: ErrorCodeName,
    /** Sent to the client: must not contain secrets or other users' data. */
    message: string,
    /** For LOGIN_THROTTLED. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
