#!/usr/bin/env bash
# A local ClickHouse cluster for trying and testing the cluster topology
# (docs/operations/scaling.md): ZooKeeper (Debian's package) and two more
# ClickHouse servers on loopback, beside the shared services, never instead of them.
#
#   infra/local/cluster.sh up     [zookeeper|ch1|ch2 ...]   install what is missing, start, wait until ready
#   infra/local/cluster.sh down   [zookeeper|ch1|ch2 ...]   stop
#   infra/local/cluster.sh status [zookeeper|ch1|ch2 ...]   one line per server; exit 1 if any is down
#
# Both servers know two clusters over the same two servers:
#   nova_replicated  1 shard x 2 replicas  (ch1, ch2 hold the same data)
#   nova_sharded     2 shards x 1 replica  (ch1 is shard 1, ch2 is shard 2)
# A server has one {shard} macro, so it is the nova_sharded one (01 on ch1, 02 on
# ch2); tables of nova_replicated use a replica path without {shard}
# (CLICKHOUSE_REPLICA_PATH, see docs/operations/scaling.md). Data and logs are kept
# under var/cluster/ (NOVA_CLUSTER_DIR); every port is overridable, so tests run
# a private cluster with free ports.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# the helpers (apt_install, wait_for, stop_pidfile) and ch_up of the shared services
source "$ROOT/infra/local/services.sh"
log() { printf '[cluster] %s\n' "$*" >&2; }

CLUSTER_DIR=${NOVA_CLUSTER_DIR:-$VAR/cluster}
ZK_PORT=${NOVA_ZK_PORT:-52181}
CH1_TCP_PORT=${NOVA_CH1_TCP_PORT:-59101}
CH1_HTTP_PORT=${NOVA_CH1_HTTP_PORT:-58201}
CH1_INTERSERVER_PORT=${NOVA_CH1_INTERSERVER_PORT:-59201}
CH2_TCP_PORT=${NOVA_CH2_TCP_PORT:-59102}
CH2_HTTP_PORT=${NOVA_CH2_HTTP_PORT:-58202}
CH2_INTERSERVER_PORT=${NOVA_CH2_INTERSERVER_PORT:-59202}
ALL_SERVERS=(zookeeper ch1 ch2)

# ---------------------------------------------------------------- zookeeper
ZK_DIR=$CLUSTER_DIR/zookeeper
# `stat`, not `ruok`: ZooKeeper answers imok before it serves sessions
zk_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf stat >&3 && cat <&3) | grep -q '^Mode: standalone'; }
zk_installed() { [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null; }
zk_up() {
  zk_installed || { log "installing zookeeper"; apt_install zookeeper; }
  mkdir -p "$ZK_DIR/data"
  if zk_ready 2>/dev/null; then log "zookeeper: already up on $ZK_PORT"; return 0; fi
  cat >"$ZK_DIR/zoo.cfg" <<EOF
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
tickTime=2000
maxClientCnxns=100
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
autopurge.purgeInterval=1
EOF
  # standalone server of Debian's package; its jar's manifest names the libraries it needs
  nohup java -Xmx256m -Dzookeeper.log.dir="$ZK_DIR" -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_DIR/zoo.cfg" >>"$ZK_DIR/zookeeper.log" 2>&1 &
  echo $! >"$ZK_DIR/zookeeper.pid"
  wait_for zookeeper "$ZK_DIR/zookeeper.log" zk_ready
  log "zookeeper: up on 127.0.0.1:$ZK_PORT"
}
zk_down() { stop_pidfile zookeeper "$ZK_DIR/zookeeper.pid" 10; }
zk_status() { zk_ready; }

# ---------------------------------------------------------------- clickhouse ch1, ch2
node_ports() {  # node -> sets CH_DIR, CH_TCP_PORT, CH_HTTP_PORT, INTERSERVER_PORT, SHARD for ch_* of services.sh
  CH_DIR=$CLUSTER_DIR/$1
  case $1 in
    ch1) CH_TCP_PORT=$CH1_TCP_PORT; CH_HTTP_PORT=$CH1_HTTP_PORT; INTERSERVER_PORT=$CH1_INTERSERVER_PORT; SHARD=01 ;;
    ch2) CH_TCP_PORT=$CH2_TCP_PORT; CH_HTTP_PORT=$CH2_HTTP_PORT; INTERSERVER_PORT=$CH2_INTERSERVER_PORT; SHARD=02 ;;
  esac
}

node_write_cluster_config() {  # node; config.d/ is merged into ch_write_config's config.xml
  mkdir -p "$CH_DIR/config.d"
  cat >"$CH_DIR/config.d/cluster.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$INTERSERVER_PORT</interserver_http_port>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <macros>
        <shard>$SHARD</shard>
        <replica>$1</replica>
    </macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <remote_servers>
        <!-- internal_replication: a Distributed insert goes to one replica, the
             Replicated table copies it (and deduplicates a retried block) -->
        <nova_replicated>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$CH1_TCP_PORT</port></replica>
                <replica><host>127.0.0.1</host><port>$CH2_TCP_PORT</port></replica>
            </shard>
        </nova_replicated>
        <nova_sharded>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$CH1_TCP_PORT</port></replica>
            </shard>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$CH2_TCP_PORT</port></replica>
            </shard>
        </nova_sharded>
    </remote_servers>
</yandex>
EOF
}

# a server that started while ZooKeeper was not serving yet has no session; 18.16
# crashes on an ON CLUSTER query then, so `up` waits until it has one
node_zk_ready() { clickhouse-client --port "$CH_TCP_PORT" --query "SELECT count() FROM system.zookeeper WHERE path = '/'"; }
node_up() {
  node_ports "$1"
  node_write_cluster_config "$1"
  # a server killed mid-replication can hold parts ZooKeeper never heard of, and then
  # refuses to start ("doesn't look like the set of parts in ZooKeeper"); this flag,
  # read and removed at start-up, makes it detach those and fetch from the replicas
  mkdir -p "$CH_DIR/data/flags" && touch "$CH_DIR/data/flags/force_restore_data"
  ch_up
  wait_for "$1's ZooKeeper session" "$CH_DIR/clickhouse-server.err.log" node_zk_ready
}
node_down() { node_ports "$1"; ch_down; }
node_status() { node_ports "$1"; ch_ready; }

# ---------------------------------------------------------------- verbs
fn_for() { case $1 in zookeeper) echo zk;; ch1|ch2) echo node;;
  *) log "unknown server '$1' (known: ${ALL_SERVERS[*]})"; exit 2;; esac; }
port_of() { case $1 in zookeeper) echo "$ZK_PORT";; ch1) echo "$CH1_TCP_PORT";; ch2) echo "$CH2_TCP_PORT";; esac; }
run() { local fn; fn=$(fn_for "$2"); if [ "$fn" = zk ]; then "zk_$1"; else "node_$1" "$2"; fi; }

verb=${1:-}; shift || true
servers=("$@"); [ ${#servers[@]} -gt 0 ] || servers=("${ALL_SERVERS[@]}")
for s in "${servers[@]}"; do fn_for "$s" >/dev/null || exit 2; done
mkdir -p "$CLUSTER_DIR"
case $verb in
  up)
    command -v clickhouse-server >/dev/null || ensure_installed
    for s in "${servers[@]}"; do run up "$s" || { log "'$s' failed to start"; exit 1; }; done ;;
  down)
    # ClickHouse first: a server whose ZooKeeper is gone logs errors until it stops
    for s in ch2 ch1 zookeeper; do [[ " ${servers[*]} " == *" $s "* ]] && run down "$s"; done; true ;;
  status)
    rc=0
    for s in "${servers[@]}"; do
      if run status "$s" >/dev/null 2>&1; then state=up; else state=down; rc=1; fi
      printf '%-10s %-5s 127.0.0.1:%s\n' "$s" "$state" "$(port_of "$s")"
    done
    exit $rc ;;
  *) echo "usage: $0 up|down|status [zookeeper|ch1|ch2 ...]" >&2; exit 2 ;;
esac
