/**
 * Login: username + password + the request's CTID in the user's allowed set.
 *
 * - Attempts for the same (username, container) run one at a time, so
 *   parallel guesses cannot slip past the backoff.
 * - Unknown users cost the same as wrong passwords: a PBKDF2 with the
 *   configured iteration count and a GCM open that fails, then the same
 *   failure bookkeeping and the same BAD_CREDENTIALS.
 * - The password is checked before the container, and a disallowed
 *   container counts as a failure too, so it gets at most `lockAfter`
 *   guesses and learns nothing about other containers.
 * - Key derivations go through a per-container fair lane with a small
 *   concurrency, so one container's login flood cannot fill the thread pool
 *   in front of everyone else's logins.
 * - A password change (a session op) checks the current password exactly
 *   like a login, in the same queue, with the same failure bookkeeping: a
 *   session does not buy an attacker more guesses.
 */
import { randomBytes } from 'node:crypto';
import type { Change, StorageReads } from './backend.js';
import type { ErrorCodeName } from '../proto/index.js';
import { VhsmFailure } from './errors.js';
import type { FairScheduler } from './fairness.js';
import { deriveMasterKey } from './kdf.js';
import { unwrapKey } from './keywrap.js';
import { FailureLedger, type LoginSubject } from './lockout.js';
import { openAuthKey, sealAuthKey, type UserRow } from './users.js';

export interface AuthenticatedUser {
  readonly userId: number;
  readonly username: string;
  /** Owned by the caller: hand it to a session or zero it. */
  readonly authKey: Buffer;
  /** Clears the failure counters; a DB write, so run it inside the login's commit. */
  readonly resetFailures: Change;
}

export type AuditedCommit = (change: Change, result: 'OK' | ErrorCodeName) => Promise<void>;

export interface LoginAttempt {
  readonly username: string;
  readonly password: Uint8Array;
  readonly ctid: number;
}

export interface PasswordChangeAttempt {
  /** The session's user: its name is checked like a login, its id guards against a re-created namesake. */
  readonly userId: number;
  readonly username: string;
  readonly ctid: number;
  readonly oldPassword: Uint8Array;
  readonly newPassword: Uint8Array;
}

/** A password that opened the user's auth key. */
interface Verified {
  readonly user: UserRow;
  readonly subject: LoginSubject;
  /** Owned by the caller. */
  readonly authKey: Buffer;
}

export class Authenticator {
  private readonly inProgress = new Map<string, Promise<void>>();
  /** A blob no derived key opens, for the unknown-user path. */
  private readonly dummyBlob = Buffer.concat([Buffer.of(1), randomBytes(12 + 32 + 16)]);
  private readonly dummyAad = Buffer.from('vhsm/dummy');

  constructor(
    private readonly reads: StorageReads,
    private readonly ledger: FailureLedger,
    private readonly kdfLane: FairScheduler,
    /**
     * Iterations for new users: the unknown-user path derives with this, and
     * a password change never derives with fewer.
     */
    private readonly serverIterations: number,
    private readonly clock: () => number,
  ) {}

  /** Authenticates or throws VhsmFailure; failures are recorded through `commit` with their audit row. */
  async authenticate(attempt: LoginAttempt, commit: AuditedCommit): Promise<AuthenticatedUser> {
    return this.oneAtATime(attemptKey(attempt.username, attempt.ctid), async () => {
      const { user, subject, authKey } = await this.verify(attempt, commit);
      return { userId: user.id, username: user.name, authKey, resetFailures: (tx) => this.ledger.reset(tx, subject, attempt.ctid) };
    });
  }

  /**
   * Checks the old password like a login (a wrong one is a login failure,
   * throttled and locked alike), then rewraps the auth key under the new one
   * and clears the failures, in one commit with the audit row. Nothing else
   * changes: every key and every session of the user stays valid.
   */
  async changePassword(change: PasswordChangeAttempt, commit: AuditedCommit): Promise<void> {
    await this.oneAtATime(attemptKey(change.username, change.ctid), async () => {
      const attempt = { username: change.username, password: change.oldPassword, ctid: change.ctid };
      const { user, subject, authKey } = await this.verify(attempt, commit);
      try {
        if (user.id !== change.userId) throw new VhsmFailure('SESSION_INVALID', 'no such session here');
        const iterations = Math.max(user.kdfIterations, this.serverIterations);
        const sealed = await this.inKdfLane(change.ctid, () => sealAuthKey(user.id, authKey, change.newPassword, iterations));
        await commit(async (tx) => {
          if (!(await tx.replaceAuthKey(user.id, user.wrappedAuthKey, sealed, this.clock()))) {
            throw new VhsmFailure('BAD_CREDENTIALS', 'the password was changed meanwhile; this change was not made');
          }
          await this.ledger.reset(tx, subject, change.ctid);
        }, 'OK');
      } finally {
        authKey.fill(0);
      }
    });
  }

  /** Gate, derivation, then the checks; a failure is committed before it is thrown. Run inside oneAtATime. */
  private async verify(attempt: LoginAttempt, commit: AuditedCommit): Promise<Verified> {
    const user = await this.reads.findUser(attempt.username);
    const subject: LoginSubject = user ? { userId: user.id, name: user.name } : { userId: undefined, name: attempt.username };

    const gate = await this.ledger.gate(subject, attempt.ctid, this.clock());
    if (!gate.allowed) {
      if (gate.code === 'LOCKED_OUT') throw new VhsmFailure('LOCKED_OUT', 'too many failed logins from this container; an administrator must unlock');
      throw new VhsmFailure('LOGIN_THROTTLED', 'too many failed logins; retry later', gate.retryAfterMs);
    }

    const authKey = await this.inKdfLane(attempt.ctid, () => (user ? openAuthKey(user, attempt.password) : this.dummyOpen(attempt.password)));
    // The failure is on disk before the caller hears about it (and before the next attempt runs).
    const failWith = async (code: 'BAD_CREDENTIALS' | 'CONTAINER_NOT_ALLOWED', message: string): Promise<never> => {
      authKey?.fill(0);
      await commit(async (tx) => void (await this.ledger.recordFailure(tx, subject, attempt.ctid, this.clock())), code);
      throw new VhsmFailure(code, message);
    };
    if (!user || !authKey) return failWith('BAD_CREDENTIALS', 'unknown user or wrong password');
    if (!(await this.reads.isContainerAllowed(user.id, attempt.ctid))) return failWith('CONTAINER_NOT_ALLOWED', 'this container may not log in as this user');
    return { user, subject, authKey };
  }

  /** Same work as a real attempt: PBKDF2 with the default count, then a GCM open that fails. */
  private async dummyOpen(password: Uint8Array): Promise<null> {
    const master = await deriveMasterKey(password, randomBytes(16), this.serverIterations);
    try {
      unwrapKey(master, this.dummyBlob, this.dummyAad);
      return null;
    } finally {
      master.fill(0);
    }
  }

  private inKdfLane<T>(ctid: number, fn: () => Promise<T>): Promise<T> {
    const queued = this.kdfLane.run(ctid, fn);
    if (!queued) throw new VhsmFailure('BUSY', 'too many logins in progress from this container');
    return queued;
  }

  private async oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.inProgress.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.inProgress.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.inProgress.get(key) === tail) this.inProgress.delete(key);
    }
  }
}

/** Attempts for the same (user name, container) run one at a time. */
function attemptKey(username: string, ctid: number): string {
  return `${username}\u0000${ctid}`;
}
