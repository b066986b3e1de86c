/**
 * Schema migrations, applied in order inside one transaction each.
 * `PRAGMA user_version` records how many have run. Never edit a released
 * migration; append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: users, allowed containers, login failures, wrapped keys, audit chain.
  `
  CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so stale sessions cannot match a new user
    name                TEXT NOT NULL UNIQUE,
    kdf_salt            BLOB NOT NULL,
    kdf_iterations      INTEGER NOT NULL,
    wrapped_auth_key    BLOB NOT NULL,
    created_ms          INTEGER NOT NULL,
    password_changed_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE user_containers (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ctid    INTEGER NOT NULL,
    PRIMARY KEY (user_id, ctid)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE login_failures (
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ctid            INTEGER NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL,
    locked          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, ctid)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: cached unwrapped keys are matched on it
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    key_type      INTEGER NOT NULL,
    label         TEXT NOT NULL,
    usages        INTEGER NOT NULL, -- bit (1 << KeyUsage)
    extractable   INTEGER NOT NULL,
    length_bytes  INTEGER NOT NULL,
    wrapped       BLOB NOT NULL,    -- AES-256-GCM under the user's auth key, AAD binds the columns above
    created_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER NOT NULL DEFAULT 0,
    use_count     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, key_id)
  ) STRICT;

  CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    ctid         INTEGER NOT NULL,
    netns_cookie TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    gid          INTEGER NOT NULL,
    user         TEXT NOT NULL,
    op           TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    result       TEXT NOT NULL,
    hash         BLOB NOT NULL      -- SHA-256(previous hash || canonical row)
  ) STRICT;

  -- Head of the chain, updated in the same transaction as every append, so a
  -- truncated tail no longer matches it.
  CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
  ) STRICT;
  INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  `,

  // 2: PKCS#11 public objects, listed before login: the public key of each
  // key pair in the clear, and certificates.
  `
  -- SPKI DER of a key pair, written when the key is stored (public by nature;
  -- never for secret keys). Pairs stored before this migration get theirs at
  -- their owner's next login, which can unwrap them.
  ALTER TABLE keys ADD COLUMN public_key BLOB;
  -- The listing's page query, without reading the user's secret keys.
  CREATE INDEX keys_public ON keys (user_id, key_id) WHERE public_key IS NOT NULL;
  -- The login's backfill query: the key-pair types that existed before this
  -- migration (EC, Ed25519, RSA, X25519); empty once every pair has its key.
  CREATE INDEX keys_missing_public ON keys (user_id) WHERE public_key IS NULL AND key_type IN (1, 2, 4, 5, 6, 7, 8, 9, 12);

  CREATE TABLE certificates (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    cert_id    TEXT NOT NULL,  -- server-chosen, 32 hex characters
    object_id  BLOB NOT NULL,  -- PKCS#11 CKA_ID, 0..64 bytes
    label      TEXT NOT NULL,
    der        BLOB NOT NULL,  -- one X.509 certificate, checked when stored; public data
    created_ms INTEGER NOT NULL,
    UNIQUE (user_id, cert_id)
  ) STRICT;
  `,
];
