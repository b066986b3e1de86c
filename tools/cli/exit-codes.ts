/**
 * Exit codes of the `vhsm` client CLI. Stable: scripts rely on them.
 *
 * Codes 0-9 mean what they mean for vhsm-admin (tools/common/exit-codes.ts),
 * read from the client's side: 4 "no such user" becomes "no such key", 6
 * "wrong current password" becomes "login failed". 10 and up are the
 * client's own.
 */
import { EXIT } from '../common/exit-codes.js';

export const VHSM_EXIT = {
  /** Success; for verify and verify-mac: the signature/MAC is valid. */
  OK: EXIT.OK,
  /** verify/verify-mac: INVALID; otherwise an unexpected failure (server error, protocol mismatch). */
  FAILURE: EXIT.FAILURE,
  /** Bad command line or bad input data (wrong encoding, too large, refused by the server as invalid). */
  USAGE: EXIT.USAGE,
  /** The server found the stored key damaged (KEY_CORRUPTED). */
  STORAGE: EXIT.STORAGE,
  /** No such key or certificate. */
  NOT_FOUND: EXIT.NOT_FOUND,
  /** A key with that id already exists. */
  EXISTS: EXIT.EXISTS,
  /** Login failed: unknown user or wrong password (or the session was ended by the server). */
  BAD_PASSWORD: EXIT.BAD_PASSWORD,
  /** No password could be read (no TTY, empty, unreadable file). */
  PASSWORD_INPUT: EXIT.PASSWORD_INPUT,
  /** Cannot reach the server: module not loaded, container not bound, no server, server gone, timeout. */
  TRANSPORT: EXIT.TRANSPORT,
  /**
   * The right password, but this container is not allowed to log in as the
   * user; without a login (public objects): no such user, or not allowed here.
   */
  CONTAINER_NOT_ALLOWED: 10,
  /** Too many failed logins from this container: throttled (retry later) or locked out (admin must unlock). */
  LOCKED_OUT: 11,
  /** The key does not allow this: usage, key type, algorithm, not extractable. */
  REFUSED: 12,
  /** The server is busy, stopping, or at a limit: retry later. */
  BUSY: 13,
  /** An input file could not be read or an output file could not be written. */
  IO: 14,
  /** decrypt, keys import-wrapped: the input does not authenticate (tampered, wrong key, wrong AAD); nothing released or stored. */
  DECRYPT_FAILED: 15,
} as const;

export const VHSM_EXIT_CODES_HELP = `Exit codes:
  0   success (verify, verify-mac: valid)
  1   verify, verify-mac: INVALID; or an unexpected failure (server error)
  2   bad usage or bad input data (wrong encoding, too large, invalid field)
  3   the server reports the stored key damaged
  4   no such key or certificate
  5   a key with that id already exists
  6   login failed: unknown user or wrong password
  8   no password could be read (no TTY, empty, unreadable file)
  9   cannot reach the VHSM server (module not loaded, container not bound,
      no server registered, server gone, timeout)
  10  this container is not allowed to log in as the user (certs list,
      public-objects: or there is no such user; the server does not say which)
  11  too many failed logins: throttled or locked out
  12  the key does not allow this (usage, key type, algorithm, not extractable)
  13  the server is busy, stopping or at a limit: retry later
  14  an input file cannot be read or an output file cannot be written
  15  decrypt, keys import-wrapped: the data does not authenticate (tampered
      or truncated, wrong key, wrong --aad): nothing released or stored`;
