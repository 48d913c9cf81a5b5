-- Least-privilege Postgres roles for cookie-auth-api. Run as a superuser (postgres) with psql:
--
--   psql -v owner_password="$OWNER_PASSWORD" -v app_password="$APP_PASSWORD" -f deploy/db/roles.sql
--
-- Creates (or updates, so it is safe to run again, e.g. to rotate a password):
--   owner_role (default cookie_auth_owner): owns the database and its tables; `npm run db:migrate`
--     connects as this role. The API never does.
--   app_role (default cookie_auth_app): what the API connects as, with MIGRATE_ON_START=false. It
--     may read and write rows, and nothing else: no CREATE, ALTER, DROP, TRUNCATE or REFERENCES.
--   db_name (default cookie_auth): the database, owned by owner_role.
-- Passwords come from psql variables, never from this file. Role and database names may be
-- overridden the same way (-v owner_role=... -v app_role=... -v db_name=...); the tests do.

\set ON_ERROR_STOP on

\if :{?owner_password}
\else
  -- Fails (ON_ERROR_STOP: psql exits non-zero) rather than create a role without a password.
  do $$ begin raise exception 'roles.sql: set -v owner_password=... (e.g. openssl rand -hex 32)'; end $$;
\endif
\if :{?app_password}
\else
  do $$ begin raise exception 'roles.sql: set -v app_password=... (e.g. openssl rand -hex 32)'; end $$;
\endif
\if :{?owner_role}
\else
  \set owner_role cookie_auth_owner
\endif
\if :{?app_role}
\else
  \set app_role cookie_auth_app
\endif
\if :{?db_name}
\else
  \set db_name cookie_auth
\endif

-- Roles: created when missing, password (re)set every time. Neither may create roles or databases.
select format('create role %I', :'owner_role')
where not exists (select from pg_roles where rolname = :'owner_role') \gexec
select format('create role %I', :'app_role')
where not exists (select from pg_roles where rolname = :'app_role') \gexec
alter role :"owner_role" with login nosuperuser nocreatedb nocreaterole noreplication password :'owner_password';
alter role :"app_role" with login nosuperuser nocreatedb nocreaterole noreplication password :'app_password';

-- The database, owned by the owner role.
select format('create database %I owner %I', :'db_name', :'owner_role')
where not exists (select from pg_database where datname = :'db_name') \gexec
alter database :"db_name" owner to :"owner_role";
-- Only these two roles may connect (PUBLIC may by default). TEMP stays off for the API.
revoke all on database :"db_name" from public;
grant connect, create, temporary on database :"db_name" to :"owner_role";
grant connect on database :"db_name" to :"app_role";

\connect :"db_name"

-- The owner owns the schema the migrations write to. Before Postgres 15, PUBLIC could create
-- tables in `public`: take that away, so the runtime role cannot, whatever the server version.
alter schema public owner to :"owner_role";
revoke all on schema public from public;
grant usage on schema public to :"app_role";

-- Rows, not structure: the tables that exist now...
grant select, insert, update, delete on all tables in schema public to :"app_role";
-- ...sequences, should a future migration add a serial column (inserting needs nextval)...
grant usage, select on all sequences in schema public to :"app_role";
-- ...and every table or sequence the owner creates later (each migration), without re-running this.
alter default privileges for role :"owner_role" in schema public
  grant select, insert, update, delete on tables to :"app_role";
alter default privileges for role :"owner_role" in schema public
  grant usage, select on sequences to :"app_role";

-- The audit log is append-only for the API: it may add and read events, never rewrite or remove
-- them, so a compromised instance cannot cover its tracks. (The grants above included it; this runs
-- after them whenever this file is run again. The migrator repeats the revoke after each migration,
-- see src/db/client.ts, so a table created later by a migration gets it too.)
select format('revoke update, delete, truncate on table public.audit_events from %I', :'app_role')
where exists (select from pg_tables where schemaname = 'public' and tablename = 'audit_events') \gexec

-- Drizzle's migrator keeps its journal in the `drizzle` schema (created by the owner on the first
-- migration). The runtime role is given nothing there: with MIGRATE_ON_START=false it never reads it.

-- The API asks for these per connection at start-up; a transaction-mode pooler (PgBouncer) drops
-- start-up parameters, so the role carries them too: a runaway statement or an idle transaction is
-- cut server-side whichever way the API connects.
alter role :"app_role" set statement_timeout = '1200ms';
alter role :"app_role" set idle_in_transaction_session_timeout = '10s';
