#!/usr/bin/env bash
# Tile and receipt reads on a big log (docs/performance.md, "Tiles and
# receipts"), with the shared peer-bench's load generator: evident-server
# (this checkout, Trillian in-process on SQLite) is filled with N entries
# (default 1,000,000), then read by 64 readers: receipts of random entries
# (GET /v1/receipt), and full tiles (2/3 level-0 hash tiles, 1/3 entry
# bundles); then Tessera v1.0.4 POSIX (the tile-based peer, serving its
# own files) is filled with N entries and read the same way.
#
#   scripts/tiles-bench.sh            # N=1000000, 20 s per read run
#   N=100000 DUR=10s scripts/tiles-bench.sh
#
# Needs ../shared/peer-bench (PEER_BENCH) and Tessera's POSIX binary in
# /tmp/tessera-bin (installed as evident_vs_tessera.sh does). Filling takes
# minutes; the machine's 2 cores are shared with the load generator.
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER_BENCH:-../shared/peer-bench}
N=${N:-1000000}
DUR=${DUR:-20s}
OUT=$(mktemp -d /tmp/evident-tiles-bench.XXXXXX)
trap 'kill $epid $tpid 2>/dev/null || true; rm -rf "$OUT/data" "$OUT/tdata"' EXIT
epid=
tpid=
go build -o "$OUT/evident-server" ./cmd/evident-server
(cd "$PEER/loadgen" && go build -o "$OUT/loadgen" .)
(cd "$PEER/keygen" && go build -o "$OUT/keygen" .)
[ -x /tmp/tessera-bin/posix ] || GOBIN=/tmp/tessera-bin go install github.com/transparency-dev/tessera/cmd/conformance/posix@v1.0.4
lg() { "$OUT/loadgen" -workers 64 -dur "$DUR" -out "$OUT/results.jsonl" "$@" | grep -a -E '^(SUMMARY|RECEIPTS)'; }

"$OUT/evident-server" --data_dir "$OUT/data" --listen 127.0.0.1:18193 --scrub_rate 0 >"$OUT/evident.log" 2>&1 &
epid=$!
until [ -s "$OUT/data/write-token" ] && curl -sf -o /dev/null http://127.0.0.1:18193/checkpoint; do sleep 0.2; done
E="-url http://127.0.0.1:18193 -pids evident=$epid"
# Fill (N entries, ?wait=false), then receipts of those entries at random.
lg -mode evident-read $E -token_file "$OUT/data/write-token" -vkey_file "$OUT/data/log.vkey" -fill "$N" -drain 3600s -label "evident receipts, $N entries"
lg -mode tessera-read $E -label "evident tiles, $N entries"
lg -mode tessera-read $E -label "evident tiles, $N entries (warm)"
kill $epid; wait $epid || true; epid=

"$OUT/keygen" bench.example/tessera "$OUT/tessera" >/dev/null
mkdir -p "$OUT/tdata"
/tmp/tessera-bin/posix --storage_dir="$OUT/tdata" --listen=127.0.0.1:18194 --private_key="$OUT/tessera.key" >"$OUT/tessera.log" 2>&1 &
tpid=$!
until curl -sf -o /dev/null http://127.0.0.1:18194/checkpoint; do sleep 0.2; done
T="-url http://127.0.0.1:18194 -pids tessera_posix=$tpid"
"$OUT/loadgen" -mode tessera $T -workers 256 -dur 3600s -max "$N" -drain 60s -label "tessera fill" >/dev/null
lg -mode tessera-read $T -label "tessera tiles, $N entries"
lg -mode tessera-read $T -label "tessera tiles, $N entries (warm)"
echo "results: $OUT/results.jsonl"
