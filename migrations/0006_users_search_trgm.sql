-- Trigram indexes for GET /users?q= (email or name contains q,
-- case-insensitively: scripts/lib/store.lua, list_users_search).
--
-- `email ILIKE '%q%' OR name ILIKE '%q%'` cannot use a b-tree: without these
-- it reads the table until a page of matches is found, the whole table when
-- q is rare. pg_trgm's GIN operator class answers ILIKE with a bitmap of the
-- rows that hold every trigram of q (one index per column, combined by a
-- BitmapOr), rechecked against the row. A q of fewer than 3 characters has
-- no trigram: store.lua sends it to the primary-key walk instead
-- (docs/performance.md, "Searching users").
--
-- pg_trgm ships with PostgreSQL (Debian: in postgresql-15 itself; elsewhere
-- the contrib package). CREATE EXTENSION needs a role that may create it: the
-- embedded cluster's user is a superuser; on RDS pg_trgm is a trusted
-- extension (PostgreSQL 13 and later), which the database owner (rds_superuser
-- or the owner of the database) may create. Where the migrating role may not,
-- a superuser runs `CREATE EXTENSION pg_trgm;` once beforehand and this
-- statement does nothing.
--
-- The migration runs in a transaction, so the indexes are built without
-- CONCURRENTLY: writes to users wait while they are built (a few seconds per
-- 100 000 users). On a large live table, build them beforehand by hand
-- with CREATE INDEX CONCURRENTLY under these names; IF NOT EXISTS then skips
-- them here.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The operator class named with the schema the extension lives in: where it
-- was created before, that schema need not be on the search_path (a
-- platform's `extensions` schema; spec/unit/store_sql_spec.lua's scratch
-- schema).
DO $$
DECLARE
    ext_schema text := (SELECT quote_ident(n.nspname) FROM pg_extension e
                        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm');
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS users_email_trgm_idx ON users USING gin (email %s.gin_trgm_ops)',
                   ext_schema);
    EXECUTE format('CREATE INDEX IF NOT EXISTS users_name_trgm_idx ON users USING gin (name %s.gin_trgm_ops)',
                   ext_schema);
END
$$;
