#!/bin/sh
# Runs once, when the Postgres container initialises an empty volume (docker-entrypoint-initdb.d):
# the same roles.sql as on a VM, with passwords from the container's environment (deploy/.env).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" \
  -v db_name="$APP_DB_NAME" -f /deploy/db/roles.sql
