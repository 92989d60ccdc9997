#!/usr/bin/env bash
# Runs every Evident test on a fresh machine: installs and starts what the
# tests need (MariaDB from Debian's packages, as a plain process on loopback),
# then `go test ./...`. This is what CI runs (.ci/run).
#
# Extra arguments go to `go test`, e.g. scripts/test.sh -run TestEndToEnd ./log/
set -euo pipefail
cd "$(dirname "$0")/.."

command -v go >/dev/null || { echo "test.sh: Go is not installed (need Go 1.26)" >&2; exit 1; }

# MariaDB keeps running for the next run when it was running before;
# otherwise it is stopped at the end.
if ! scripts/mariadb.sh running; then
	trap 'scripts/mariadb.sh stop' EXIT
fi
eval "$(scripts/mariadb.sh start)"
export EVIDENT_MYSQL_DSN
echo "test.sh: MariaDB is up ($EVIDENT_MYSQL_DSN)"

# The MySQL tests must run, not skip, here.
export EVIDENT_REQUIRE_MYSQL=1

go vet ./...
if [ $# -eq 0 ]; then
	set -- ./...
fi
go test -count=1 -timeout 25m "$@"

# The explorer (/ui) and the witness page in a real headless Chromium
# (Debian's package, installed if missing); it prints where its
# screenshots are.
if [ "$*" = "./..." ]; then
	scripts/ui-test.sh
fi

# The concurrency tests once more under the race detector (the whole suite
# under -race takes too long for CI on 2 cores).
if [ "$*" = "./..." ]; then
	go test -count=1 -race -timeout 15m -run 'Concurrent|Race|EndToEnd$|TwoServers|AcrossLogs' \
		./storage/ ./storage/sqlite/ ./storage/backend/ ./witness/ ./log/
fi
