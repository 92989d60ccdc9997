#!/usr/bin/env bash
# Runs every fuzz target in the repository for a while each (default 30s):
#
#   scripts/fuzz.sh          # all targets, 30s each
#   FUZZTIME=5m scripts/fuzz.sh
#
# The seed corpora (f.Add and testdata/fuzz) run in every `go test`; this
# explores beyond them. A failure leaves its input in testdata/fuzz/<target>/
# of the package: fix the bug and commit the input as a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
	pkg=./$(dirname "${f#./}")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		echo "== $pkg $target ($t)"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$t" -parallel 1 "$pkg"
	done
done
