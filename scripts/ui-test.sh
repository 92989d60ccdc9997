#!/usr/bin/env bash
# Tests the web explorer (/ui) and the witness page in a real headless
# Chromium (Debian's package, installed here if missing):
#
#   - starts a real evident-server on 127.0.0.1 with two real witnesses
#     (one Ed25519, one ML-DSA-44) whose cosignatures its policy requires,
#   - submits entries, takes a receipt,
#   - loads /ui with a good receipt and its entry, then with tampered ones
#     (another index, a forged cosignature, another entry, a broken log
#     signature), and checks that the page's own verification says VALID
#     (green) for the first and INVALID (red) for the others,
#   - loads the plain /ui and the witness page and checks what they show,
#   - loads a named log's /NAME/ui/ on a server with several logs and checks
#     that it shows that log, verified with its own key.
#
# Screenshots and the DOMs go to a directory printed at the end
# (UI_TEST_OUT, default a new temporary directory). scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${UI_TEST_OUT:-$(mktemp -d /tmp/evident-ui-test.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/evident-ui-work.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ] || ! command -v curl >/dev/null; then
	echo "ui-test.sh: installing Debian's chromium and curl" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq chromium curl >/dev/null
	browser=$(command -v chromium)
fi
echo "ui-test.sh: $("$browser" --version 2>/dev/null | head -1)"

go build -o "$work/bin/" ./cmd/evident-server ./cmd/evident-witness

# wait_line FILE REGEX: waits (10 s at most) for a line matching REGEX in
# FILE and prints its first match.
wait_line() {
	for _ in $(seq 100); do
		if grep -m1 -oE "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "ui-test.sh: no line matching '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

start_log() { # start_log NAME [flags...]: starts evident-server, sets log_url
	local name=$1
	shift
	"$work/bin/evident-server" --data_dir "$work/log" --listen 127.0.0.1:0 --origin ui-test.example/log "$@" \
		>"$work/$name.out" 2>"$work/$name.err" &
	log_pid=$!
	pids+=("$log_pid")
	log_url=$(wait_line "$work/$name.out" 'http://127\.0\.0\.1:[0-9]+')
}

# 1. The log's key: a first start creates it.
start_log log0
log_vkey=$(wait_line "$work/log0.out" 'vkey: .*' | cut -d' ' -f2)
kill "$log_pid"
wait "$log_pid" || true

# 2. Two witnesses following it: Ed25519 and ML-DSA-44.
echo "log $log_vkey" >"$work/logs"
start_witness() { # start_witness NAME KEYTYPE: sets w_url, w_vkey
	"$work/bin/evident-witness" --data_dir "$work/$1" --listen 127.0.0.1:0 --logs_file "$work/logs" \
		--name "ui-test.example/$1" --key_type "$2" >"$work/$1.out" 2>"$work/$1.err" &
	pids+=("$!")
	w_vkey=$(wait_line "$work/$1.out" 'vkey: .*' | cut -d' ' -f2)
	w_url=http://$(wait_line "$work/$1.err" 'addr=127\.0\.0\.1:[0-9]+' | cut -d= -f2)
}
start_witness w1 ed25519
w1_url=$w_url w1_vkey=$w_vkey
start_witness w2 mldsa44
w2_url=$w_url w2_vkey=$w_vkey
cat >"$work/policy" <<EOF
log $log_vkey
witness w1 $w1_vkey $w1_url
witness w2 $w2_vkey $w2_url
group both all w1 w2
quorum both
EOF

# 3. The log with that policy; three entries.
start_log log1 --witness_policy_file "$work/policy"
token=$(cat "$work/log/write-token")
for i in 1 2 3; do
	printf '{"event":"invoice %d approved","by":"alice","amount":%d}' "$i" "$((i * 100))" >"$work/entry$i.json"
	curl -sf -H "Authorization: Bearer $token" --data-binary @"$work/entry$i.json" "$log_url/v1/add-entry" >"$work/add$i.json"
done
entry=$work/entry2.json
h=$( (printf '\0'; cat "$entry") | sha256sum | cut -c1-64)
curl -sf "$log_url/v1/receipt?leaf_hash=$h" >"$work/good.tlog-proof"
grep -q '^— ui-test.example/w2 ' "$work/good.tlog-proof" || { echo "ui-test.sh: the receipt has no ML-DSA-44 cosignature" >&2; cat "$work/good.tlog-proof" >&2; exit 1; }

# Tampered copies: another index; a changed signature byte in the log's
# signature, the Ed25519 witness's and the ML-DSA-44 witness's
# cosignatures; and (below) the right receipt with another entry.
sed 's/^index 1$/index 2/' "$work/good.tlog-proof" >"$work/index.tlog-proof"
tamper() { # tamper SIGNER OUT: changes one base64 digit near the end of SIGNER's signature
	awk -v who="$1" '$1 == "—" && $2 == who { n = split($3, a, ""); a[n-3] = (a[n-3] == "A" ? "B" : "A"); s = ""; for (i = 1; i <= n; i++) s = s a[i]; $3 = s } { print }' \
		"$work/good.tlog-proof" >"$work/$2.tlog-proof"
}
tamper ui-test.example/log logsig
tamper ui-test.example/w1 cosig
tamper ui-test.example/w2 mldsa
for f in index cosig logsig mldsa; do
	if cmp -s "$work/good.tlog-proof" "$work/$f.tlog-proof"; then echo "ui-test.sh: tampering $f changed nothing" >&2; exit 1; fi
done

b64url() { base64 -w0 "$1" | tr '+/' '-_' | tr -d '='; }

# page NAME URL [noshot]: the DOM after the page's scripts ran, and a
# screenshot.
page() {
	local flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
		--user-data-dir="$work/profile-$1" --virtual-time-budget=20000 --window-size=1280,2600)
	timeout 60 "$browser" "${flags[@]}" --dump-dom "$2" >"$out/$1.html" 2>"$work/chromium-$1.err" || {
		echo "ui-test.sh: chromium failed on $1" >&2
		tail -20 "$work/chromium-$1.err" >&2
		return 1
	}
	[ "${3:-}" = noshot ] && return 0
	timeout 60 "$browser" "${flags[@]}" --screenshot="$out/$1.png" "$2" >/dev/null 2>&1 || echo "ui-test.sh: no screenshot of $1" >&2
}

fail=0
expect() { # expect NAME STATUS: the receipt verdict of page NAME is STATUS
	local got
	got=$(grep -oE 'id="verdict"[^>]*data-status="[a-z]+"' "$out/$1.html" | grep -oE 'data-status="[a-z]+"' | cut -d'"' -f2 || true)
	if [ "$got" = "$2" ]; then
		echo "ok   $1: receipt verdict $got"
	else
		echo "FAIL $1: receipt verdict '${got:-none}', want $2" >&2
		grep -oE '<li class="[a-z]+"[^<]*<span class="mark">[^<]*</span><strong>[^<]*</strong>[^<]*' "$out/$1.html" | sed 's/<[^>]*>/ /g' >&2 || true
		fail=1
	fi
}

other=$(b64url "$work/entry3.json")
page good "$log_url/ui/#receipt=$(b64url "$work/good.tlog-proof")&entry=$(b64url "$entry")"
expect good ok
page tampered-index "$log_url/ui/#receipt=$(b64url "$work/index.tlog-proof")&entry=$(b64url "$entry")"
expect tampered-index bad
page tampered-cosignature "$log_url/ui/#receipt=$(b64url "$work/cosig.tlog-proof")&entry=$(b64url "$entry")"
expect tampered-cosignature bad
page tampered-mldsa-cosignature "$log_url/ui/#receipt=$(b64url "$work/mldsa.tlog-proof")&entry=$(b64url "$entry")"
expect tampered-mldsa-cosignature bad
page tampered-log-signature "$log_url/ui/#receipt=$(b64url "$work/logsig.tlog-proof")&entry=$(b64url "$entry")"
expect tampered-log-signature bad
page other-entry "$log_url/ui/#receipt=$(b64url "$work/good.tlog-proof")&entry=$other"
expect other-entry bad

# The browser's verifier under random changes: the good receipt verifies,
# every changed copy is refused, the parsers refuse junk cleanly.
page selftest "$log_url/ui/selftest.html#receipt=$(b64url "$work/good.tlog-proof")&entry=$(b64url "$entry")&n=${UI_SELFTEST_N:-300}" noshot
if grep -qE 'id="result"[^>]*data-status="ok"' "$out/selftest.html"; then
	echo "ok   selftest: $(grep -oE 'PASSED[^<]*' "$out/selftest.html")"
else
	echo "FAIL selftest: $(grep -oE '(FAILED|The self-test)[^<]*' "$out/selftest.html" || echo 'no result')" >&2
	grep -oE '<li class="bad">[^<]*' "$out/selftest.html" | head -5 >&2 || true
	fail=1
fi

# The plain page: the latest checkpoint verified with both cosignatures
# and the quorum met, the chart and the metrics filled in.
page explorer "$log_url/ui/#lookup=$h"
check() { # check NAME REGEX WHAT
	if grep -qE "$2" "$out/$1.html"; then echo "ok   $1: $3"; else echo "FAIL $1: $3 (no match for $2)" >&2; fail=1; fi
}
check explorer 'id="cp-verdict"[^>]*data-status="ok"' "latest checkpoint verified, quorum met"
check explorer 'id="cp-size"[^>]*>3<' "tree size 3"
check explorer 'witness w2</td>.{0,300}ML-DSA-44' "the ML-DSA-44 cosignature listed"
check explorer '<polyline class="grow"' "growth chart drawn"
check explorer 'id="lookup-result"[^>]*><span class="status ok">verified</span> entry 1 ' "entry looked up by leaf hash, inclusion verified"
check explorer '"event": "invoice 2 approved"' "the entry shown as pretty JSON"
check explorer 'data-ready="true"' "scripts finished"

page witness "$w2_url/"
check witness 'ui-test.example/log' "the witness page lists the log"
check witness '<td class="num">3</td>' "the witness page shows size 3"
check witness 'ML-DSA-44' "the witness page names its algorithm"

# 4. A named log of a server with several (docs/deployment.md, "Several
# logs on one server"): its explorer at /NAME/ui/ shows that log (its
# origin, size and entries, verified with its own key), not the default.
m=$work/multi
"$work/bin/evident-server" --data_dir "$m" --listen 127.0.0.1:0 --origin ui-test.example/default >"$work/m0.out" 2>"$work/m0.err" &
m_pid=$!
pids+=("$m_pid")
wait_line "$work/m0.out" 'http://127\.0\.0\.1:[0-9]+' >/dev/null
kill "$m_pid"
wait "$m_pid" || true
"$work/bin/evident-server" log add --data_dir "$m" --origin ui-test.example/audit audit >"$work/m-add.out" 2>&1
"$work/bin/evident-server" --data_dir "$m" --listen 127.0.0.1:0 >"$work/m1.out" 2>"$work/m1.err" &
pids+=("$!")
m_url=$(wait_line "$work/m1.out" 'http://127\.0\.0\.1:[0-9]+')
for i in 1 2; do
	printf '{"event":"audit %d","by":"bob"}' "$i" >"$work/audit$i.json"
	curl -sf -H "Authorization: Bearer $(cat "$m/write-token")" --data-binary @"$work/audit$i.json" "$m_url/audit/v1/add-entry" >/dev/null
done
ha=$( (printf '\0'; cat "$work/audit2.json") | sha256sum | cut -c1-64)
page named-log "$m_url/audit/ui/#lookup=$ha"
check named-log 'id="cp-verdict"[^>]*data-status="(ok|warn)"[^>]*>Signed by the log' "the named log's checkpoint verified with its own key"
check named-log 'id="cp-origin"[^>]*>ui-test.example/audit<' "the named log's origin, not the default log's"
check named-log 'id="cp-size"[^>]*>3<' "the named log's size (its creation record and two entries)"
check named-log 'id="lookup-result"[^>]*><span class="status ok">verified</span> entry 2 ' "its entry looked up by leaf hash, inclusion verified"
check named-log '"event": "audit 2"' "its entry shown"

echo "ui-test.sh: screenshots and DOMs in $out"
exit $fail
