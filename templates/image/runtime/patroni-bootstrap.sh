#!/bin/bash
# runtime/patroni-bootstrap.sh: Patroni's post_bootstrap script ([cluster]): run once on
# the node that initialised the cluster, with a superuser connection string as $1.
# It creates the project's database (the single-server entrypoint does the same in
# 02-database.sh); replicas get it by streaming.
set -Eeuo pipefail
url=$1
if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
    psql --no-psqlrc --quiet -X -v ON_ERROR_STOP=1 -d "$url" \
        -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";'
fi
