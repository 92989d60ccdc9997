# Shared by the example scripts: builds the binaries, starts a log (and
# witnesses) on loopback in a temporary directory, posts events with curl,
# and stops everything on exit. Source it; do not run it.
#
# Needs: go, curl, base64, od. Everything listens on 127.0.0.1 only.

set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${EXAMPLE_DIR:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

# build puts evident-server, evident-witness and evident in $work/bin.
build() {
	(cd "$repo" && go build -o "$work/bin/" ./cmd/evident-server ./cmd/evident-witness ./cmd/evident)
	export PATH="$work/bin:$PATH"
}

# wait_for FILE PATTERN: waits (up to 60 s) until FILE has a line matching
# PATTERN, and prints the first match.
wait_for() {
	for _ in $(seq 600); do
		if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1" >&2
	cat "$1" >&2
	return 1
}

# start_log [FLAGS...]: starts evident-server on a free port with its data
# in $work/data; sets LOG (its URL), VKEY (the log's verifier key file) and
# TOKEN_FILE.
start_log() {
	evident-server --data_dir "$work/data" --listen 127.0.0.1:0 "$@" >"$work/server.out" 2>"$work/server.log" &
	pids+=($!)
	LOG=$(wait_for "$work/server.out" '^listening: ' | sed 's/^listening: //')
	VKEY=$work/data/log.vkey
	TOKEN_FILE=$(sed -n 's/^write token: //p' "$work/server.out")
	echo "log $LOG, key $(cat "$VKEY")"
}

# stop_log: stops the server started last.
stop_log() {
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
}

# start_witness NAME: starts evident-witness following the log; sets
# WITNESS_URL and WITNESS_VKEY.
start_witness() {
	local dir=$work/witness-$1
	mkdir -p "$dir"
	echo "log $(cat "$VKEY")" >"$dir/logs"
	evident-witness --name "$1" --listen 127.0.0.1:0 --data_dir "$dir/data" --logs_file "$dir/logs" >"$dir/out" 2>"$dir/log" &
	pids+=($!)
	WITNESS_VKEY=$(wait_for "$dir/out" '^vkey: ' | sed 's/^vkey: //')
	WITNESS_URL=http://$(wait_for "$dir/log" 'evident-witness serving' | sed -E 's/.*addr=(127\.0\.0\.1:[0-9]+).*/\1/')
}

# post_event JSON: posts an event, waits for its receipt, prints the
# answer's leaf hash in hex and keeps the answer in $work/answers/.
post_event() {
	mkdir -p "$work/answers"
	local out=$work/answers/$(date +%s%N).json
	curl -sS --fail-with-body -H "Authorization: Bearer $(cat "$TOKEN_FILE")" --data-binary "$1" "$LOG/v1/events" >"$out"
	sed -E 's/.*"leaf_hash":"([^"]*)".*/\1/' "$out" | base64 -d | od -An -tx1 | tr -d ' \n'
	echo
}

# b64 HEX: a leaf hash in hex as base64 (for refs).
b64() {
	# shellcheck disable=SC2059 # the format is the bytes, as \xHH escapes
	printf "$(echo -n "$1" | sed 's/../\\x&/g')" | base64 -w0
}
