/**
 * Typed errors with stable codes: the server's ErrorCode names, the
 * transport's codes passed through unchanged, and two of the library's own.
 */
import type { ErrorCodeName } from '../proto/index.js';
import type { TransportErrorCode } from '../transport/types.js';

export type VhsmErrorCode =
  | ErrorCodeName
  | TransportErrorCode
  /** The reply did not fit the protocol (wrong version, id, or result). */
  | 'PROTOCOL_ERROR'
  /** The server sent an error code this library does not know. */
  | 'UNKNOWN_ERROR';

export class VhsmError extends Error {
  override readonly name = 'VhsmError';
  constructor(
    readonly code: VhsmErrorCode,
    message: string,
    /** For LOGIN_THROTTLED: wait this long before the next attempt. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
