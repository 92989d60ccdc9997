#!/usr/bin/env bash
# Starts a private MariaDB server as a plain process for Evident's tests and
# local runs: its own data directory, a Unix socket and a port on 127.0.0.1,
# no system service. Installs MariaDB from Debian's packages when missing.
#
#   scripts/mariadb.sh start   # prints: export EVIDENT_MYSQL_DSN=...
#   scripts/mariadb.sh stop
#   scripts/mariadb.sh running # exit 0 when it is up
#
# Environment: MARIADB_DIR (default /tmp/evident-mariadb), MARIADB_PORT
# (default 13306).
set -euo pipefail

dir=${MARIADB_DIR:-/tmp/evident-mariadb}
port=${MARIADB_PORT:-13306}
sock=$dir/mysqld.sock

install() {
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] && return 0
	echo "mariadb.sh: installing MariaDB from Debian's packages" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq mariadb-server mariadb-client >&2
}

ping() {
	mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1
}

start() {
	install
	mkdir -p "$dir"
	if ! ping; then
		if [ ! -d "$dir/data/mysql" ]; then
			mariadb-install-db --no-defaults --user=root --datadir="$dir/data" \
				--auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
				{ cat "$dir/install.log" >&2; exit 1; }
		fi
		/usr/sbin/mariadbd --no-defaults --user=root --datadir="$dir/data" \
			--socket="$sock" --port="$port" --bind-address=127.0.0.1 \
			--pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
			--innodb-buffer-pool-size=256M --max-connections=500 \
			--innodb-flush-log-at-trx-commit=1 --sync-binlog=1 \
			</dev/null >>"$dir/error.log" 2>&1 &
		for _ in $(seq 1 120); do
			ping && break
			sleep 0.5
		done
		ping || { echo "mariadb.sh: MariaDB did not start; see $dir/error.log" >&2; tail -20 "$dir/error.log" >&2; exit 1; }
	fi
	echo "export EVIDENT_MYSQL_DSN='root@unix($sock)/'"
}

stop() {
	if ping; then
		mariadb-admin --socket="$sock" -uroot shutdown
	fi
}

case "${1:-}" in
start) start ;;
running) ping ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
