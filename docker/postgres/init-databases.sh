#!/bin/sh
# Runs once, when the postgres service initialises an empty data volume: POSTGRES_DB (thumbloop's
# tables) exists by then; MLflow gets its own databases, one for runs and the model registry and
# one for its basic-auth users, so the three Alembic histories never meet.
set -eu
for db in mlflow mlflow_auth; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
