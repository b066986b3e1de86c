/**
 * Every failure of the `vhsm` CLI becomes a CliError: an exit code from
 * VHSM_EXIT, a stable string code (the client library's VhsmError code, or
 * one of the CLI's own), and a message that says what to do next.
 */
import type { VhsmError, VhsmErrorCode } from '../../client/index.js';
import { TransportError } from '../../transport/types.js';
import { EXIT, ToolError } from '../common/exit-codes.js';
import { VHSM_EXIT } from './exit-codes.js';

/** The CLI's own codes, next to VhsmErrorCode. */
export type CliOwnCode = 'USAGE' | 'BAD_INPUT' | 'PASSWORD_INPUT' | 'IO' | 'FAILURE';

export class CliError extends ToolError {
  constructor(
    exitCode: number,
    /** Stable: a VhsmErrorCode or a CliOwnCode. */
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(exitCode, message);
  }
}

export const usageError = (message: string): CliError => new CliError(VHSM_EXIT.USAGE, 'USAGE', message);
/** Input data that cannot be used (wrong encoding, too large): exit 2 like usage, its own code. */
export const inputError = (message: string): CliError => new CliError(VHSM_EXIT.USAGE, 'BAD_INPUT', message);
export const ioError = (message: string): CliError => new CliError(VHSM_EXIT.IO, 'IO', message);

/** What the failing invocation was about, for messages. */
export interface FailureContext {
  readonly user?: string | undefined;
  readonly keyId?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.ceil(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** The parts of a VhsmError used here (also built from a TransportError). */
type CodedError = Pick<VhsmError, 'code' | 'message' | 'retryAfterMs'>;

/**
 * A VhsmError, recognised by name: importing the client library here would
 * load protobufjs before every --help and usage error (seconds under TCG).
 */
function isVhsmError(error: unknown): error is VhsmError {
  return error instanceof Error && error.name === 'VhsmError' && typeof (error as { code?: unknown }).code === 'string';
}

/** Maps a VhsmError (server or transport code) to exit code and advice. */
function fromVhsmError(error: CodedError, context: FailureContext): CliError {
  const user = context.user ?? 'the user';
  const key = context.keyId === undefined ? 'the key' : `key '${context.keyId}'`;
  const detail = error.message;
  const make = (exitCode: number, message: string): CliError => new CliError(exitCode, error.code, message, error.retryAfterMs);
  switch (error.code) {
    // Transport: the request never reached the server, or no answer came back.
    case 'ENOENT':
      return make(VHSM_EXIT.TRANSPORT, 'the vhsm_transport kernel module is not loaded on this host: ask the host admin to load it (modprobe vhsm_transport)');
    case 'EACCES':
      return make(VHSM_EXIT.TRANSPORT, 'this container is not bound to a CTID: ask the host admin to run `vhsmctl bind --ctid N --pid PID` for it');
    case 'ECONNREFUSED':
      return make(VHSM_EXIT.TRANSPORT, 'no VHSM server registered: is vhsm-server running in the VHSM container?');
    case 'ECONNRESET':
      return make(VHSM_EXIT.TRANSPORT, 'the VHSM server went away during the request (stopped or restarted): check vhsm-server, then retry');
    case 'ETIMEDOUT':
      return make(
        VHSM_EXIT.TRANSPORT,
        `no answer from the VHSM server${context.timeoutMs ? ` within ${seconds(context.timeoutMs)}` : ''}: it may be overloaded or stuck; retry, or raise --timeout-ms`,
      );
    case 'EMSGSIZE':
      return make(VHSM_EXIT.USAGE, 'the request is too large for the transport (32 KiB per request, headers included): give less data');
    case 'EAGAIN':
    case 'ENOBUFS':
      return make(VHSM_EXIT.BUSY, `the transport is full (${detail}): retry shortly`);
    case 'EPERM':
    case 'EBUSY':
    case 'EINVAL':
    case 'ECLOSED':
    case 'EIO':
      return make(VHSM_EXIT.TRANSPORT, `transport failure: ${detail}`);

    // Login.
    case 'BAD_CREDENTIALS':
      return make(VHSM_EXIT.BAD_PASSWORD, `login failed for ${user}: unknown user or wrong password`);
    case 'CONTAINER_NOT_ALLOWED':
      return make(
        VHSM_EXIT.CONTAINER_NOT_ALLOWED,
        `${user} may not log in from this container: ask the VHSM admin to run \`vhsm-admin user allow ${user} CTID\` with this container's CTID`,
      );
    case 'LOGIN_THROTTLED':
      return make(
        VHSM_EXIT.LOCKED_OUT,
        `too many failed logins for ${user} from this container: retry in ${seconds(error.retryAfterMs ?? 1000)}`,
      );
    case 'LOCKED_OUT':
      return make(
        VHSM_EXIT.LOCKED_OUT,
        `${user} is locked out of this container after too many failed logins: ask the VHSM admin to run \`vhsm-admin user unlock ${user}\``,
      );
    case 'SESSION_INVALID':
    case 'NOT_AUTHENTICATED':
      return make(VHSM_EXIT.BAD_PASSWORD, `the server ended the session (${detail}): the user may have been removed or this container denied`);

    // Keys and operations.
    case 'KEY_NOT_FOUND':
      return make(VHSM_EXIT.NOT_FOUND, `no ${key} for ${user}: \`vhsm keys list\` shows the keys`);
    case 'OBJECT_NOT_FOUND':
      return make(VHSM_EXIT.NOT_FOUND, `${detail} for ${user}: \`vhsm certs list\` shows the certificates`);
    case 'NOT_ALLOWED':
      return make(
        VHSM_EXIT.CONTAINER_NOT_ALLOWED,
        `no public objects of ${user} here: there is no such user, or this container is not one ${user} may log in from (the server does not say which)`,
      );
    case 'KEY_EXISTS':
      return make(VHSM_EXIT.EXISTS, `${key} already exists: choose another --id, or \`vhsm keys delete\` it first`);
    case 'USAGE_NOT_ALLOWED':
      return make(VHSM_EXIT.REFUSED, `${key} does not allow this operation (${detail}): \`vhsm keys info\` shows its usages`);
    case 'WRONG_KEY_TYPE':
      return make(VHSM_EXIT.REFUSED, `the algorithm does not fit ${key} (${detail}): \`vhsm keys info\` shows its type`);
    case 'NOT_EXTRACTABLE':
      return make(VHSM_EXIT.REFUSED, `${key} was not created extractable, so it cannot leave the server`);
    case 'UNSUPPORTED_ALGORITHM':
      return make(VHSM_EXIT.REFUSED, `the server does not support this algorithm: ${detail}`);
    case 'INVALID_ARGUMENT':
      return make(VHSM_EXIT.USAGE, `the server refused the request as invalid: ${detail}`);
    case 'DECRYPT_FAILED':
      return make(
        VHSM_EXIT.DECRYPT_FAILED,
        `decryption failed (${detail}): the data was tampered with or truncated, is for another key, or needs other --aad; nothing was released or stored`,
      );
    case 'STREAM_NOT_FOUND':
      return make(VHSM_EXIT.FAILURE, `the server dropped the streaming context (${detail}): the input stalled for over 60 s or took over 15 min; retry`);
    case 'KEY_CORRUPTED':
      return make(VHSM_EXIT.STORAGE, `${key} failed its integrity check on the server: tell the VHSM admin (and run \`vhsm-admin audit verify\`)`);

    // Load and lifecycle.
    case 'BUSY':
      return make(VHSM_EXIT.BUSY, 'the VHSM server is busy with this container\'s requests: retry shortly');
    case 'SHUTTING_DOWN':
      return make(VHSM_EXIT.BUSY, 'the VHSM server is stopping: retry when it is back');
    case 'UNAVAILABLE':
      return make(VHSM_EXIT.BUSY, `the VHSM server cannot reach its database (${detail}): nothing was done; retry shortly`);
    case 'RESOURCE_EXHAUSTED':
      return make(VHSM_EXIT.BUSY, `the VHSM server is at a limit: ${detail}`);

    // Everything else is unexpected.
    case 'UNSUPPORTED_VERSION':
    case 'PROTOCOL_ERROR':
      return make(VHSM_EXIT.FAILURE, `the client and the server do not speak the same protocol (${detail}): install matching versions`);
    default:
      return make(VHSM_EXIT.FAILURE, `the server failed (${error.code}: ${detail}): see the vhsm-server log`);
  }
}

/** Any thrown value as a CliError. */
export function toCliError(error: unknown, context: FailureContext = {}): CliError {
  if (error instanceof CliError) return error;
  if (isVhsmError(error)) return fromVhsmError(error, context);
  if (error instanceof ToolError) {
    const code = error.exitCode === EXIT.PASSWORD_INPUT ? 'PASSWORD_INPUT' : error.exitCode === EXIT.USAGE ? 'USAGE' : 'FAILURE';
    return new CliError(error.exitCode, code, error.message);
  }
  // Transport errors are normally wrapped by the client library; a connect failure is not.
  if (error instanceof TransportError) return fromVhsmError({ code: error.code as VhsmErrorCode, message: error.message, retryAfterMs: undefined }, context);
  return new CliError(VHSM_EXIT.FAILURE, 'FAILURE', error instanceof Error ? error.message : String(error));
}
