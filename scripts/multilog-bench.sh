#!/usr/bin/env bash
# Several logs on one server (docs/performance.md, "Several logs on one
# server"): the idle CPU and memory of a server with the default log alone
# and with five named logs, then writers waiting for receipts with the
# shared peer-bench's load generator: 128 on the default log alone, then 64
# on the default log and 64 on a named log at once. Prints the loadgen
# summaries and the server's CPU (from /proc) for each phase.
#
#   scripts/multilog-bench.sh           # 15 s per load phase
#   DUR=30s scripts/multilog-bench.sh
#
# Needs ../shared/peer-bench (PEER_BENCH). The 2 cores are shared with the
# load generator.
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER_BENCH:-../shared/peer-bench}
DUR=${DUR:-15s}
PORT=${PORT:-18777}
OUT=$(mktemp -d /tmp/evident-multilog-bench.XXXXXX)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$OUT"' EXIT
go build -o "$OUT/evident-server" ./cmd/evident-server
(cd "$PEER/loadgen" && go build -o "$OUT/loadgen" .)
ES=$OUT/evident-server
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
start() { # start DATA_DIR [flags...]: the server, in the background
	local d=$1
	shift
	"$ES" --data_dir "$d" --listen "127.0.0.1:$PORT" "$@" >"$OUT/out" 2>"$OUT/err" &
	pid=$!
	for _ in $(seq 100); do grep -q '^listening:' "$OUT/out" && return; sleep 0.1; done
	echo "the server did not start:"; cat "$OUT/err"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# Idle: the default log alone, then with five named logs.
for n in 0 5; do
	d=$OUT/idle$n
	start "$d"; stop
	for i in $(seq "$n"); do "$ES" log add --data_dir "$d" "log$i" >/dev/null 2>&1; done
	start "$d"
	sleep 5
	a=$(ticks); sleep 30; b=$(ticks)
	echo "idle, $n named logs: $((b - a)) ticks of CPU in 30 s (CLK_TCK $(getconf CLK_TCK)), RSS $(awk '/VmRSS/{print $2}' "/proc/$pid/status") kB"
	stop
done

# Load: one log, then two at once.
d=$OUT/load
start "$d"; stop
"$ES" log add --data_dir "$d" audit >/dev/null 2>&1
start "$d" --scrub_rate 0
lg() { "$OUT/loadgen" -mode evident -token_file "$d/write-token" -dur "$DUR" "$@" | grep -a '^SUMMARY'; }
uptime
a=$(ticks)
lg -url "http://127.0.0.1:$PORT" -vkey_file "$d/log.vkey" -workers 128 -label one-log
b=$(ticks)
echo "one log: $((b - a)) ticks of server CPU"
uptime
lg -url "http://127.0.0.1:$PORT" -vkey_file "$d/log.vkey" -workers 64 -label default-of-two >"$OUT/lg1" &
l1=$!
lg -url "http://127.0.0.1:$PORT/audit" -vkey_file "$d/logs/audit/log.vkey" -workers 64 -label audit-of-two >"$OUT/lg2" &
l2=$!
wait "$l1" "$l2"
c=$(ticks)
cat "$OUT/lg1" "$OUT/lg2"
echo "two logs: $((c - b)) ticks of server CPU"
uptime
stop
