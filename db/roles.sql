-- Roles of the MLOps control plane, for installations whose DBA creates roles by hand (managed PostgreSQL,
-- where the migrating role has no CREATEROLE or is not a superuser). Run ONCE per server as a role
-- administrator, BEFORE the first `mlops db upgrade`; revision 0002/0012 then skip creating what exists and
-- grant the table privileges themselves (the schema owner grants on the tables it owns).
--
--   psql "$ADMIN_URL" -v owner=mlops_owner -v db=mlops -f db/roles.sql
--
-- Then set the passwords and the URLs:
--   ALTER ROLE mlops_login PASSWORD '...';        -> DATABASE_URL
--   ALTER ROLE mlops_maintenance PASSWORD '...';  -> MLOPS_MAINTENANCE_DATABASE_URL
--   the owner (:owner)                            -> MLOPS_MIGRATION_DATABASE_URL

-- The application role: holds the table privileges (granted by the migrations), cannot log in.
CREATE ROLE mlops_app NOLOGIN NOSUPERUSER NOBYPASSRLS;

-- The login role of flows and commands (PostgREST's "authenticator"): NOINHERIT and member of mlops_app only,
-- so it reaches data only inside `SET LOCAL ROLE mlops_app`, and RESET ROLE leads to a role with nothing.
CREATE ROLE mlops_login LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
GRANT mlops_app TO mlops_login;

-- The maintenance role of system_session(): cross-organization work (schedulers' organization listing,
-- authentication lookups, platform administration, retention). BYPASSRLS because that work is
-- cross-organization by definition; bounded by per-table grants (MAINTENANCE_GRANTS in revision 0012).
-- Not a member of anything, and nobody is a member of it: no application connection can SET ROLE to it.
-- (On services where only a superuser can grant BYPASSRLS, e.g. RDS: rds_superuser can.)
CREATE ROLE mlops_maintenance LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS;

-- The owner runs migrations: it owns the schema's tables, so it can grant on them. It needs to be a member
-- of mlops_app only to create policies naming it; it must NOT be used by the application.
GRANT mlops_app TO :"owner";
GRANT CONNECT ON DATABASE :"db" TO mlops_login, mlops_maintenance;
GRANT USAGE ON SCHEMA public TO mlops_app, mlops_maintenance;
