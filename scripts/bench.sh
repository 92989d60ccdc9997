#!/usr/bin/env bash
# Benchmarks behind docs/performance.md. Run from anywhere; each section is
# one component. Not timed tests: figures go to docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Witness (docs/performance.md, "Witness (evident-witness)"): add-checkpoint
# requests/s of one witness, and the Pool.Cosign round's p50/p99 latency.
go test -run XXX -bench 'AddCheckpoint|PoolCosign' -benchtime 3s -count 3 ./witness
