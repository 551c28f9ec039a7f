#!/bin/sh
# Patroni's bootstrap.post_init: run once, on the node that initialised the cluster, as
# soon as its PostgreSQL accepts connections. $1 is a connection string for the superuser.
# Creates the service's role and database (SANCTIONS_DB_PASSWORD from the environment).
set -eu
psql "$1" -v ON_ERROR_STOP=1 -v password="${SANCTIONS_DB_PASSWORD:?}" <<'SQL'
CREATE ROLE sanctions LOGIN PASSWORD :'password';
CREATE DATABASE sanctions OWNER sanctions;
SQL
