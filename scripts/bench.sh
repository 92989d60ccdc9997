#!/usr/bin/env bash
# Benchmarks behind docs/performance.md. Run from anywhere; each section is
# one component. Not timed tests: figures go to docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Witness (docs/performance.md, "Witness (evident-witness)"): add-checkpoint
# requests/s of one witness, and the Pool.Cosign round's p50/p99 latency.
go test -run XXX -bench 'AddCheckpoint|PoolCosign' -benchtime 3s -count 3 ./witness

# Write path against the leading tile-based log (docs/performance.md, "Write
# path"), in one run alternating with it, from the shared peer-bench
# (outside this repository; skipped when it is absent): 256 submitters
# waiting for receipts, then ?wait=false; then in-process MariaDB.
PEER=${PEER_BENCH:-../shared/peer-bench}
if [ -x "$PEER/evident_vs_tessera.sh" ]; then
	"$PEER/evident_vs_tessera.sh" "$PWD" || true
	EVIDENT_LG_ARGS=-nowait "$PEER/evident_vs_tessera.sh" "$PWD" || true
	"$PEER/evident_mariadb.sh" || true
else
	echo "bench.sh: no peer-bench at $PEER (set PEER_BENCH): skipping the comparison with the tile-based log"
fi
# Receipts and tile reads on a 1,000,000-entry log, against the tile-based
# peer's tile reads (docs/performance.md, "Tiles and receipts"; needs the
# peer-bench too; fills for several minutes).
if [ -x "$PEER/evident_vs_tessera.sh" ]; then
	scripts/tiles-bench.sh || true
fi
# Several logs on one server (docs/performance.md, "Several logs on one
# server"): idle cost of named logs, one log against two under load.
if [ -d "$PEER/loadgen" ]; then
	scripts/multilog-bench.sh || true
fi
# 16 submitters against the log with two real witnesses (2-of-2).
EVIDENT_BENCH_DUR=10s go test -run '^$' -bench WitnessedReceipts -benchtime 1x ./cmd/evident
# Receipt latency on a 10,000,000-entry log against a 10,000-entry one
# (fills about 5 GB; EVIDENT_BIG_LOG_DIR keeps the big log for reuse).
EVIDENT_BIG_LOG=${EVIDENT_BIG_LOG:-10000000} EVIDENT_LOAD=10s go test -count 1 -timeout 60m -run TestBigLog -v ./cmd/evident-server | grep 'big log:'

# Log server (docs/performance.md, "Log server (evident-server)"): the real
# binary on a fresh data directory (Trillian in-process on SQLite), loopback
# HTTP clients in the same test process: idle CPU, submit-to-receipt
# latency p50/p99 with 16 concurrent submitters, entries/s with 256 and 512
# waiting submitters, with ?wait=false and with batches of 1,000, an
# overload of 4,096 submitters, the server's CPU per entry and its peak
# memory.
EVIDENT_LOAD=${EVIDENT_LOAD:-10s} go test -count 1 -run TestLoad -v ./cmd/evident-server | grep 'evident-server load:'
# Tenant isolation (docs/performance.md, "Tenant isolation"): three quiet
# tenants' receipt p99 while a fourth submits at 0×, 1× and 10× its quota,
# and the same flood without quotas.
EVIDENT_QUOTA_LOAD=${EVIDENT_QUOTA_LOAD:-30s} go test -count 1 -timeout 30m -run TestQuotaIsolation -v ./cmd/evident-server | grep 'quota isolation:'
# Entries served checked against the published checkpoint, and the cost of
# recording each signed checkpoint before witnesses see it.
go test -run '^$' -bench 'BenchmarkEntries' -count 3 ./log/
go test -run '^$' -bench 'BenchmarkAddSigned' -count 3 ./storage/
# A publishing round's tiles transaction when it fills no tile
# (docs/performance.md, "Fuller commits under load").
go test -run '^$' -bench 'PutTilesRound' -benchtime 3000x -count 3 ./storage/
# What the log does beyond HTTP, and what attribution costs an entry
# (docs/performance.md, "Where the rest of the gap is"): 256 clients against
# the log and against a handler that only reads and answers, in one process;
# and the tenants of 1,000 published entries recorded at once.
go test -run '^$' -bench 'AddEntryHTTP' -benchtime 50000x -count 3 ./log/ 2>&1 | grep -E 'cpu-µs|^ok'
go test -run '^$' -bench 'RecordAttributions' -count 3 ./storage/
# MariaDB's own CPU per leaf for the appends alone (Trillian's schema,
# batches of 256 and 1,000), read from the server process's /proc stat.
eval "$(scripts/mariadb.sh start)"
export EVIDENT_MYSQL_DSN EVIDENT_REQUIRE_MYSQL=1
MDB_PID=$(pgrep -x mariadbd || pgrep -x mysqld)
for bs in 256 1000; do
	t0=$(awk '{print $14 + $15}' "/proc/$MDB_PID/stat")
	go test -run '^$' -bench "AppendMySQL/batch=$bs\$" -benchtime 100x ./storage/backend/ | grep '^Bench'
	t1=$(awk '{print $14 + $15}' "/proc/$MDB_PID/stat")
	echo "MariaDB CPU per appended leaf, batches of $bs: $(((t1 - t0) * 1000000 / $(getconf CLK_TCK) / (101 * bs))) µs"
done

# Storage (docs/performance.md, "Storage (storage/sqlite)"): durably queued
# leaves/s with 1, 16 and 256 concurrent callers, integrated leaves/s with
# sequencer batches of 1,000 and 10,000, and both together.
go test -run '^$' -bench 'QueueLeaves|Integrate|QueueWhileIntegrating' -benchtime 50000x -count 3 ./storage/sqlite/
go test -run '^$' -bench InsertStatements -benchtime 300x -count 3 ./storage/sqlite/
go test -run '^$' -bench AppendIdentityIndex -benchtime 300x -count 3 ./storage/sqlite/
# The writer's append + integration per leaf, in one transaction or two.
go test -run '^$' -bench AppendIntegrate -benchtime 400x -benchmem -count 3 ./storage/sqlite/
# The tiler's own work per entry (docs/performance.md, "Nothing rewritten
# each round").
go test -run '^$' -bench TileBuilder -count 3 ./log/

# CLI (docs/performance.md, "CLI (evident audit)"): audit verification on one
# core with the entries local (leaf hash + compact range per entry), then the
# real evident binary auditing the real evident-server on loopback, holding
# 100,000 entries (entries/s, and the CLI's CPU per entry).
go test -run '^$' -bench AuditVerify -cpu 1 -benchtime 2s -count 3 ./monitor
EVIDENT_AUDIT_ENTRIES=100000 go test -run '^$' -bench AuditE2E -benchtime 3x -count 2 ./cmd/evident
# The same window against a distant log (100 ms per request, test log).
go test -run '^$' -bench AuditDistantLog -benchtime 2x ./monitor
# The real evident binary submitting 10,000 JSONL lines per run to the real
# evident-server (--concurrency 256, receipts verified): lines/s and CPU/line.
go test -run '^$' -bench SubmitJSONLE2E -benchtime 2x -count 2 ./cmd/evident

# Formats (checkpoint): parsing, opening a cosigned checkpoint, verifying a
# receipt, an inclusion proof.
go test -run '^$' -bench . -benchmem ./checkpoint
