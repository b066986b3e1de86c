/**
 * The SQLite file: opening it safely, pragmas, migrations, transactions.
 *
 * - The file is created 0600 and never opened when group or world can read
 *   or write it (or its -wal/-shm companions).
 * - WAL + synchronous=FULL: a committed transaction survives kill -9 and
 *   power loss. (The server switches its connection to NORMAL and flushes
 *   the WAL itself, off the event loop: wal-sync.ts.)
 * - Every write goes through `write()`, one IMMEDIATE transaction, so the
 *   server and vhsm-admin can share the file.
 */
import Database from 'better-sqlite3';
import { closeSync, constants, fchmodSync, lstatSync, openSync } from 'node:fs';
import { MIGRATIONS } from './migrations.js';

export type StorageErrorCode = 'NOT_FOUND' | 'EXISTS' | 'INSECURE_MODE' | 'NOT_A_FILE' | 'NEWER_SCHEMA' | 'OPEN_FAILED';

export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface OpenStoreOptions {
  /** Create the file (0600) when it does not exist. Default false: a missing file is an error. */
  readonly create?: boolean;
  /** With `create`, fail when the file already exists. */
  readonly exclusive?: boolean;
  /** Milliseconds to wait for another process's write lock. */
  readonly busyTimeoutMs?: number;
}

export const SCHEMA_VERSION = MIGRATIONS.length;

function statOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Refuses files that are not regular files or that group/others may access. */
export function checkFileSafety(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    const stat = statOrUndefined(file);
    if (stat === undefined) continue;
    if (!stat.isFile()) throw new StorageError('NOT_A_FILE', `${file} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(3, '0');
      throw new StorageError('INSECURE_MODE', `${file} has mode ${mode}; group and others must have no access (chmod 600)`);
    }
  }
}

function createEmptyFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new StorageError('EXISTS', `${path} already exists`);
    throw new StorageError('OPEN_FAILED', `cannot create ${path}: ${code ?? String(error)}`);
  }
  try {
    fchmodSync(fd, 0o600); // the umask may have removed bits; never added any
  } finally {
    closeSync(fd);
  }
}

export class Store {
  private constructor(readonly db: Database.Database, readonly path: string) {}

  static open(path: string, options: OpenStoreOptions = {}): Store {
    const exists = statOrUndefined(path) !== undefined;
    if (!exists) {
      if (!options.create) throw new StorageError('NOT_FOUND', `${path} does not exist (run vhsm-admin init)`);
      createEmptyFile(path);
    } else if (options.create && options.exclusive) {
      throw new StorageError('EXISTS', `${path} already exists`);
    }
    checkFileSafety(path);

    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: true, timeout: options.busyTimeoutMs ?? 5000 });
    } catch (error) {
      throw new StorageError('OPEN_FAILED', `cannot open ${path}: ${(error as Error).message}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('secure_delete = ON'); // deleted key blobs are overwritten, not left in free pages
      db.pragma('trusted_schema = OFF');
      const store = new Store(db, path);
      store.migrate();
      checkFileSafety(path); // the -wal/-shm files now exist; they inherit the file's mode
      return store;
    } catch (error) {
      db.close();
      if (error instanceof StorageError) throw error;
      throw new StorageError('OPEN_FAILED', `cannot open ${path}: ${(error as Error).message}`);
    }
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > MIGRATIONS.length) {
      throw new StorageError('NEWER_SCHEMA', `schema version ${current} is newer than this build (${MIGRATIONS.length})`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.write(() => {
        this.db.exec(MIGRATIONS[version]!);
        this.db.pragma(`user_version = ${version + 1}`);
      });
    }
  }

  /** Runs `fn` in one IMMEDIATE transaction: all of it commits, or none. */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
