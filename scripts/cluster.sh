#!/usr/bin/env bash
# Starts Evident's multi-process topology as plain processes on loopback, the
# same one docker-compose.yml describes:
#
#   MariaDB ── trillian_log_server (gRPC 127.0.0.1:8090)
#          └── trillian_log_signer (sequencer, --force_master)
#   evident-server ×N --trillian_addr 127.0.0.1:8090 --mysql_dsn ...
#                     (HTTP 127.0.0.1:8080, 8081, ...: stateless personalities
#                      sharing one key, one tree and one state database)
#
#   scripts/cluster.sh start    # builds, starts, prints the log's vkey and token file
#   scripts/cluster.sh signer   # starts trillian_log_signer again if it is not running
#   scripts/cluster.sh stop
#
# The Trillian binaries are Trillian's own, from the pinned module (the
# same ones `go tool trillian_log_server` runs). Environment:
#   CLUSTER_DIR       where binaries, data and logs go (/tmp/evident-cluster)
#   CLUSTER_DB        the MariaDB database (evident_cluster)
#   CLUSTER_SERVERS   how many evident-server personalities (1)
#   EVIDENT_PORT      the first personality's HTTP port (8080); the next
#                     ones take the ports after it. 0: each binds a free
#                     port of its own, printed on its "listening:" line.
#   TRILLIAN_PORT     the log server's gRPC port (8090); +1 its HTTP,
#                     +2 and +3 the signer's
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${CLUSTER_DIR:-/tmp/evident-cluster}
db=${CLUSTER_DB:-evident_cluster}
servers=${CLUSTER_SERVERS:-1}
port=${EVIDENT_PORT:-8080}
tport=${TRILLIAN_PORT:-8090}

start() {
	mkdir -p "$dir/bin"
	eval "$(scripts/mariadb.sh start)"
	sock=${EVIDENT_MYSQL_DSN#*unix(}
	sock=${sock%%)*}
	dsn="root@unix($sock)/$db"

	echo "cluster.sh: building trillian_log_server, trillian_log_signer, evident-server" >&2
	go build -o "$dir/bin/" github.com/google/trillian/cmd/trillian_log_server github.com/google/trillian/cmd/trillian_log_signer
	go build -o "$dir/bin/" ./cmd/evident-server

	if ! mariadb --socket="$sock" -uroot -e "USE $db" 2>/dev/null; then
		# Trillian's MySQL schema, from the Trillian module this build pins.
		schema="$(go list -m -f '{{.Dir}}' github.com/google/trillian)/storage/mysql/schema/storage.sql"
		mariadb --socket="$sock" -uroot -e "CREATE DATABASE $db"
		mariadb --socket="$sock" -uroot "$db" <"$schema"
	fi

	"$dir/bin/trillian_log_server" --storage_system=mysql --quota_system=mysql --mysql_uri="$dsn" \
		--rpc_endpoint=127.0.0.1:$tport --http_endpoint=127.0.0.1:$((tport + 1)) >"$dir/log_server.log" 2>&1 &
	echo $! >"$dir/log_server.pid"
	signer

	for _ in $(seq 1 150); do
		(exec 3<>"/dev/tcp/127.0.0.1/$tport") 2>/dev/null && break
		sleep 0.2
	done
	for i in $(seq 1 "$servers"); do
		data=$dir/evident-data-$i
		if [ "$i" -gt 1 ]; then
			# Every personality signs as the one log: same key and token. The
			# token is copied on every start, so that a rotation on the first
			# (delete its write-token, restart it) reaches the others.
			mkdir -m 0700 -p "$data"
			[ -f "$data/log.key" ] || cp -p "$dir/evident-data-1/log.key" "$dir/evident-data-1/log.vkey" "$data/"
			cp -p "$dir/evident-data-1/write-token" "$data/"
		fi
		listen=0
		[ "$port" -eq 0 ] || listen=$((port + i - 1))
		"$dir/bin/evident-server" --trillian_addr=127.0.0.1:$tport --mysql_dsn="$dsn" \
			--data_dir="$data" --listen=127.0.0.1:$listen >"$dir/evident-$i.out" 2>"$dir/evident-$i.log" &
		echo $! >"$dir/evident-$i.pid"
		for _ in $(seq 1 150); do
			grep -q '^listening:' "$dir/evident-$i.out" 2>/dev/null && break
			kill -0 "$(cat "$dir/evident-$i.pid")" 2>/dev/null || { cat "$dir/evident-$i.log" >&2; exit 1; }
			sleep 0.2
		done
		cat "$dir/evident-$i.out"
	done
}

# signer starts trillian_log_signer unless it is running (after a crash,
# for instance: scripts/soak.sh kills it).
signer() {
	if [ -f "$dir/log_signer.pid" ] && kill -0 "$(cat "$dir/log_signer.pid")" 2>/dev/null; then
		return 0
	fi
	if [ -z "${dsn:-}" ]; then
		eval "$(scripts/mariadb.sh start)"
		sock=${EVIDENT_MYSQL_DSN#*unix(}
		sock=${sock%%)*}
		dsn="root@unix($sock)/$db"
	fi
	"$dir/bin/trillian_log_signer" --storage_system=mysql --quota_system=mysql --mysql_uri="$dsn" \
		--force_master --sequencer_interval=100ms --batch_size=1000 \
		--rpc_endpoint=127.0.0.1:$((tport + 2)) --http_endpoint=127.0.0.1:$((tport + 3)) >>"$dir/log_signer.log" 2>&1 &
	echo $! >"$dir/log_signer.pid"
}

stop() {
	for pid in "$dir"/evident-*.pid "$dir/log_signer.pid" "$dir/log_server.pid"; do
		if [ -f "$pid" ]; then
			kill "$(cat "$pid")" 2>/dev/null || true
			rm -f "$pid"
		fi
	done
}

case "${1:-}" in
start) start ;;
signer) signer ;;
stop) stop ;;
*)
	echo "usage: $0 start|signer|stop" >&2
	exit 2
	;;
esac
