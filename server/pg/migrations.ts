/**
 * PostgreSQL schema migrations, applied in order, each in one transaction
 * with the version bump (vhsm_schema.version). The same tables as SQLite's
 * (../migrations.ts) at its version 3, plus what several servers need:
 *
 * - audit rows carry a `chain`: every server appends to its own chain
 *   (its server id), each row hashing the previous row of that chain, so
 *   writers never wait on each other and every chain stays tamper-evident;
 *   audit_heads holds each chain's last seq and hash.
 * - audit and audit_heads' history cannot be rewritten by the server role
 *   when it is set up as docs/install.md says (GRANT INSERT/SELECT only on
 *   audit); the triggers below also refuse UPDATE/DELETE for any role but a
 *   superuser who drops them first.
 *
 * Container ids are in columns named `container`: "ctid" is a PostgreSQL
 * system column.
 *
 * Never edit a released migration; append a new one.
 */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    id                  BIGSERIAL PRIMARY KEY, -- never reused (a sequence), so stale sessions cannot match a new user
    name                TEXT NOT NULL UNIQUE,
    kdf_salt            BYTEA NOT NULL,
    kdf_iterations      INTEGER NOT NULL,
    wrapped_auth_key    BYTEA NOT NULL,
    created_ms          BIGINT NOT NULL,
    password_changed_ms BIGINT NOT NULL
  );

  CREATE TABLE user_containers (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    container BIGINT NOT NULL, -- a CTID ("ctid" is a PostgreSQL system column)
    PRIMARY KEY (user_id, container)
  );

  -- Shared by every server: a failure counted on one host counts on all.
  CREATE TABLE login_failures (
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    container       BIGINT NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_ms BIGINT NOT NULL,
    locked          BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, container)
  );

  CREATE TABLE keys (
    id            BIGSERIAL PRIMARY KEY, -- never reused: cached unwrapped keys are matched on it
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id        TEXT COLLATE "C" NOT NULL, -- ordered bytewise, as SQLite lists them
    key_type      INTEGER NOT NULL,
    label         TEXT NOT NULL,
    usages        INTEGER NOT NULL,
    extractable   BOOLEAN NOT NULL,
    length_bytes  INTEGER NOT NULL,
    wrapped       BYTEA NOT NULL,
    created_ms    BIGINT NOT NULL,
    last_used_ms  BIGINT NOT NULL DEFAULT 0,
    use_count     BIGINT NOT NULL DEFAULT 0,
    public_key    BYTEA,
    UNIQUE (user_id, key_id)
  );
  CREATE INDEX keys_public ON keys (user_id, key_id) WHERE public_key IS NOT NULL;

  CREATE TABLE certificates (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    cert_id    TEXT COLLATE "C" NOT NULL,
    object_id  BYTEA NOT NULL,
    label      TEXT NOT NULL,
    der        BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (user_id, cert_id)
  );

  CREATE TABLE audit (
    chain        TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    time_ms      BIGINT NOT NULL,
    container    BIGINT NOT NULL,
    netns_cookie TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    gid          BIGINT NOT NULL,
    "user"       TEXT NOT NULL,
    op           TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    result       TEXT NOT NULL,
    proc_start   TEXT,
    hash         BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
  );

  CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
  );

  CREATE FUNCTION vhsm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'audit is append-only';
  END $$;
  CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION vhsm_audit_append_only();
  CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION vhsm_audit_append_only();
  -- A head only moves forward.
  CREATE FUNCTION vhsm_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq OR NEW.chain <> OLD.chain THEN
      RAISE EXCEPTION 'audit heads only move forward';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER audit_heads_forward BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION vhsm_audit_head_forward();
  `,
];
