/**
 * The VHSM client library.
 */
export { VhsmClient, type VhsmClientOptions } from './client.js';
export { VhsmSession } from './session.js';
export { VhsmStream, STREAM_CHUNK_BYTES } from './stream.js';
export { VhsmError, type VhsmErrorCode } from './errors.js';
export type * from './types.js';
