-- Database roles for a production install (run as the owner of the schema, after
-- `sikka-supervisor migrate`, and again after every upgrade: it is idempotent).
--
--   sikka_supervisor  the program (`run`): appends to the log but can never rewrite it
--                     (INSERT and SELECT on events; no UPDATE, DELETE or TRUNCATE), keeps the
--                     projections, credentials, snapshots, leases, node rows and alerts.
--   sikka_dashboard   read-only: the log and the projections (interface section 6), never the
--                     credentials table.
--
-- The schema stays owned by the role that ran the migrations; `run` under sikka_supervisor
-- only checks that no migration is pending. Passwords are set separately, e.g. in psql:
--   \password sikka_supervisor
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sikka_supervisor') THEN
        CREATE ROLE sikka_supervisor LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sikka_dashboard') THEN
        CREATE ROLE sikka_dashboard LOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO sikka_supervisor, sikka_dashboard;

-- the program
REVOKE ALL ON events FROM sikka_supervisor;
GRANT SELECT, INSERT ON events TO sikka_supervisor;
GRANT SELECT, INSERT, UPDATE, DELETE ON practices, writebacks, credentials, snapshots, leases, nodes, alerts
    TO sikka_supervisor;
GRANT SELECT ON schema_migrations TO sikka_supervisor;
GRANT EXECUTE ON FUNCTION sikka_append(text, integer, text[], jsonb[], jsonb, jsonb) TO sikka_supervisor;

-- dashboards
GRANT SELECT ON events, practices, writebacks, leases, nodes, alerts TO sikka_dashboard;
REVOKE ALL ON credentials, snapshots FROM sikka_dashboard;
