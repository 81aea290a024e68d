#!/bin/sh
# Runs once, when the postgres service initialises an empty data volume; safe to run again by hand
# (`docker compose -f docker/compose.yaml exec postgres sh /docker-entrypoint-initdb.d/10-roles.sh`):
# every statement is idempotent and each role's password is set again from its secret.
#
# One login role per kind of service, each with only what it needs (docker/README.md):
#   thumbloop_owner     owns the thumbloop database and its tables: migrations (`migrate`) and the
#                       table grants after them (`db-grants`, docker/db_grants.py)
#   thumbloop_learning  reads and writes the tables: worker, trainer, beat, seed
#   thumbloop_review    reads the tables, writes the review_* ones: the review inbox
#   thumbloop_serving   reads votes and interactions (reply posteriors when serving has no Redis;
#                       compose's serving has Redis and mounts no database secret at all)
#   mlflow              owns MLflow's databases `mlflow` (runs, registry) and `mlflow_auth` (users)
# The superuser (POSTGRES_USER) is used by nothing but this script.
set -eu
export SECRETS_DIR="${SECRETS_DIR:-/run/secrets}"
: "${THUMBLOOP_DB:=${POSTGRES_DB}}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$THUMBLOOP_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['thumbloop_owner', 'thumbloop_learning', 'thumbloop_review',
                    'thumbloop_serving', 'mlflow']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
-- passwords from the mounted secrets (psql reads the files: they never appear in a command line)
\set pw `cat "$SECRETS_DIR/db_owner_password"`
ALTER ROLE thumbloop_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\set pw `cat "$SECRETS_DIR/db_learning_password"`
ALTER ROLE thumbloop_learning LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\set pw `cat "$SECRETS_DIR/db_review_password"`
ALTER ROLE thumbloop_review LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\set pw `cat "$SECRETS_DIR/db_serving_password"`
ALTER ROLE thumbloop_serving LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\set pw `cat "$SECRETS_DIR/db_mlflow_password"`
ALTER ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\unset pw

SELECT format('CREATE DATABASE %I OWNER thumbloop_owner', :'db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT format('CREATE DATABASE %I OWNER mlflow', d)
  FROM unnest(ARRAY['mlflow', 'mlflow_auth']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d) \gexec
ALTER DATABASE :"db" OWNER TO thumbloop_owner;
ALTER DATABASE mlflow OWNER TO mlflow;
ALTER DATABASE mlflow_auth OWNER TO mlflow;
-- no database is open to every role (PostgreSQL grants CONNECT to PUBLIC by default)
REVOKE ALL ON DATABASE :"db", mlflow, mlflow_auth FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO thumbloop_learning, thumbloop_review, thumbloop_serving;

\connect :"db"
ALTER SCHEMA public OWNER TO thumbloop_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO thumbloop_learning, thumbloop_review, thumbloop_serving;
SQL
