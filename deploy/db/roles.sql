-- deploy/db/roles.sql — moonkeep's two database roles, run once per
-- database by its administrator (the RDS master user) in one transaction,
-- and again whenever wanted: every statement is idempotent.
--
--   migrator  owns the schema objects: the only role that runs migrations
--             (the release's one-off `moonkeep migrate` task)
--   app       what the service connects as: SELECT, INSERT, UPDATE, DELETE
--             on the tables, USAGE on the sequences; no DDL, owns nothing
--
-- Run by deploy/db/create-roles.sh as a one-off ECS task of the stack
-- (deploy/README.md, "Database roles"); by hand:
--
--   MOONKEEP_APP_ROLE=moonkeep_app MOONKEEP_APP_PASSWORD=... \
--   MOONKEEP_MIGRATOR_ROLE=moonkeep_migrator MOONKEEP_MIGRATOR_PASSWORD=... \
--   psql -X --single-transaction -v ON_ERROR_STOP=1 -f deploy/db/roles.sql "$MASTER_URL"
--
-- Objects in schema public that the administrator owns (everything, where
-- migrations ran as the master user before) are handed to the migrator.
-- Default privileges make the app role's rights follow every table and
-- sequence the migrator creates later, so migrations stay role-agnostic
-- (no GRANT in migrations/). Needs psql 15 or later (\getenv).

\set ON_ERROR_STOP on
\set app_role ''
\set app_password ''
\set migrator_role ''
\set migrator_password ''
\getenv app_role MOONKEEP_APP_ROLE
\getenv app_password MOONKEEP_APP_PASSWORD
\getenv migrator_role MOONKEEP_MIGRATOR_ROLE
\getenv migrator_password MOONKEEP_MIGRATOR_PASSWORD
SELECT :'app_role' <> '' AND :'app_password' <> '' AND :'migrator_role' <> '' AND :'migrator_password' <> ''
  AND :'app_role' <> :'migrator_role' AS complete \gset
\if :complete
\else
  DO $$ BEGIN RAISE EXCEPTION 'roles.sql: set MOONKEEP_APP_ROLE, MOONKEEP_APP_PASSWORD, MOONKEEP_MIGRATOR_ROLE '
                              'and MOONKEEP_MIGRATOR_PASSWORD (two different roles)'; END $$;
\endif

-- The roles: created when missing; attributes and password set every time
-- (a rotated secret is applied by running this again). Neither may be a
-- superuser: CREATE ROLE makes none, and RDS's master could not anyway.
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'app_role', :'migrator_role']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE :"app_role" WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
ALTER ROLE :"migrator_role" WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'migrator_password';

-- The administrator acts for the migrator below (ALTER ... OWNER TO and
-- ALTER DEFAULT PRIVILEGES FOR ROLE need membership): RDS's master user is
-- no superuser.
GRANT :"migrator_role" TO CURRENT_USER;

-- Nobody else creates in public (PostgreSQL 15 no longer lets PUBLIC; an
-- older server still does). The migrator creates there, and may CREATE in
-- the database: schemas, and trusted extensions such as pg_trgm.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"migrator_role";
GRANT USAGE ON SCHEMA public TO :"app_role";
SELECT format('GRANT CONNECT, CREATE ON DATABASE %I TO %I', current_database(), :'migrator_role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app_role') \gexec

-- What the administrator owns in public goes to the migrator: tables,
-- views and the like first (their own sequences, identity or serial,
-- follow them), then whatever sequences, functions and types are left
-- (a range type takes its multirange along). Extensions keep theirs.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              n.nspname, c.relname, :'migrator_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e') \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'migrator_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'S'
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e') \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'migrator_role')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e') \gexec
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, :'migrator_role')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r')
   AND t.typowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                   AND d.deptype = 'e') \gexec

-- The app role's rights on what exists, and on what the migrator creates
-- from now on, in any schema.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator_role" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator_role" GRANT USAGE ON SEQUENCES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator_role" GRANT USAGE ON SCHEMAS TO :"app_role";
