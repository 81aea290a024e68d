#!/bin/sh
# Entry point of compose's `mlflow` service: writes MLflow's basic-auth configuration from the
# environment (the user store's URL carries a password, so it is not baked into a file in the
# image), points MLFLOW_AUTH_CONFIG_PATH at it, and runs `mlflow server` with the arguments given.
#
#   MLFLOW_AUTH_DATABASE_URI        SQLAlchemy URL of the basic-auth user store (required)
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what every user may do on what others made (default READ)
#   MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD
#                                   the admin MLflow creates on its first start (read by MLflow)
set -eu
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (the basic-auth user store)}"
config="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/mlflow-basic-auth.ini}"
umask 077
# configparser reads '%' as interpolation: double it (URL-encoded passwords)
database_uri=$(printf '%s' "$MLFLOW_AUTH_DATABASE_URI" | sed 's/%/%%/g')
cat > "$config" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${database_uri}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$config"
exec mlflow server "$@"
