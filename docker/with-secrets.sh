#!/bin/sh
# Entry point of the compose services built from the image: every secret compose mounts under
# /run/secrets/ whose file name is an environment variable's name (compose `secrets:` with
# `target: THUMBLOOP_DATABASE_URL`, `target: MLFLOW_TRACKING_PASSWORD`, ...) becomes that
# variable, then the command runs. So a service sees only the secrets mounted into it, and they
# stay out of `docker inspect` and out of a shared .env. Files whose names are not upper-case
# variable names (redis_acl, rabbitmq_definitions, ...) are left to the service that reads them.
#
#   docker compose -f docker/compose.yaml run --rm worker thumbloop models      # goes through here
#   docker compose -f docker/compose.yaml exec worker sh /app/docker/with-secrets.sh thumbloop models
set -eu
dir="${SECRETS_DIR:-/run/secrets}"
if [ -d "$dir" ]; then
  for file in "$dir"/*; do
    [ -f "$file" ] || continue
    name=${file##*/}
    case $name in
      "" | [0-9]* | *[!A-Z0-9_]*) continue ;;
    esac
    value=$(cat "$file")
    export "$name=$value"
  done
fi
exec "$@"
