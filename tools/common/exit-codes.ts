/**
 * Exit codes of vhsm-admin and vhsm-server. Stable: scripts rely on them.
 */
export const EXIT = {
  /** Success. */
  OK: 0,
  /** Unexpected failure (message on stderr). */
  FAILURE: 1,
  /** Bad command line or configuration. */
  USAGE: 2,
  /** The DB file is missing, unsafe (group/world-accessible), unreadable, or from a newer version. */
  STORAGE: 3,
  /** No such user. */
  NOT_FOUND: 4,
  /** The user already exists. */
  EXISTS: 5,
  /** The current password is wrong (user passwd). */
  BAD_PASSWORD: 6,
  /** audit verify found a broken chain. */
  AUDIT_BROKEN: 7,
  /** No password could be read (no TTY, empty, mismatch, unreadable file). */
  PASSWORD_INPUT: 8,
  /** vhsm-server: could not register with the kernel module. */
  TRANSPORT: 9,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  unexpected failure
  2  bad usage or configuration
  3  storage problem (missing, group/world-accessible, unreadable, newer schema)
  4  no such user
  5  user already exists
  6  wrong current password
  7  audit chain broken
  8  password input failed (no TTY, empty, mismatch, unreadable file)
  9  could not register with the kernel module (vhsm-server)`;

/** An error that carries the exit code the tool should end with. */
export class ToolError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
