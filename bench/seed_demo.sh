#!/usr/bin/env bash
# Time `manage.py seed_demo` at its default size on a scratch Postgres database
# (created, migrated, dropped), so the figure is a first start, not a no-op.
# Usage: bash bench/seed_demo.sh [extra seed_demo flags]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && { set -a; . ./.env; set +a; }
port="${NOVA_PG_PORT:-55432}"
db="nova_bench_seed"
export DATABASE_URL="postgres://postgres@127.0.0.1:${port}/${db}"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-bench-only}"
psql -h 127.0.0.1 -p "$port" -U postgres -qc "DROP DATABASE IF EXISTS ${db}" -c "CREATE DATABASE ${db}" postgres
trap 'psql -h 127.0.0.1 -p "$port" -U postgres -qc "DROP DATABASE IF EXISTS ${db}" postgres' EXIT
.venv/bin/python manage.py migrate -v0
time .venv/bin/python manage.py seed_demo "$@"
