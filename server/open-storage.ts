/**
 * Opens the store a location names: a postgres:// URL → PostgreSQL, anything
 * else → a SQLite file.
 */
import type { StorageBackend } from './backend.js';
import { PgBackend } from './pg/backend.js';
import { isPostgresUrl } from './pg/store.js';
import { SqliteBackend } from './sqlite-backend.js';

export interface OpenStorageOptions {
  /** PostgreSQL: a file holding the password. */
  readonly passwordFile?: string;
  /** PostgreSQL: connections in the pool. */
  readonly poolSize?: number;
}

export async function openStorage(location: string, options: OpenStorageOptions = {}): Promise<StorageBackend> {
  if (isPostgresUrl(location)) return PgBackend.open(location, options);
  return SqliteBackend.open(location);
}
