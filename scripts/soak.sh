#!/usr/bin/env bash
# Kill cycles under load (not part of scripts/test.sh: it takes minutes).
#
# Starts, as plain processes on loopback, a MariaDB of its own,
# Trillian's trillian_log_server and trillian_log_signer on it
# (scripts/cluster.sh), three evident-witness processes and evident-server
# with a 2-of-3 witness policy; runs 16 submitters waiting for receipts;
# and SIGKILLs and restarts EVIDENT_SOAK_CYCLES times (default 50) each:
# MariaDB, the signer, and one witness in turn. Then checks: no
# acknowledged entry lost, no checkpoint smaller than an earlier one or
# inconsistent with it, every receipt verified offline. The last line
# says what it saw (figures in docs/deployment.md).
#
#   scripts/soak.sh                        # 50 cycles each, about 15 minutes on 2 cores
#   EVIDENT_SOAK_CYCLES=5 scripts/soak.sh  # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."
log=${SOAK_LOG:-/tmp/evident-soak.log}
echo "soak.sh: the whole output goes to $log" >&2
go test -tags soak -run '^TestSoak$' -count=1 -timeout 90m -v ./integration/ >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
grep -E 'SIGKILL cycles|SOAK:|^ok' "$log"
