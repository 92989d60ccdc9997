#!/usr/bin/env bash
# An AI-decision log under witness: a credit model is deployed (public
# event), decides on loan applications (private events: the applicants'
# data stays beside the log, erasable), a human overrides one decision, and
# one applicant has their data erased (GDPR Art. 17). Every checkpoint is
# cosigned by a witness. It ends with an evidence bundle of the model's
# decisions in March, exported and verified offline with the witness
# policy: the erased decision still proves it was made, without its data.
#
#   examples/ai-decisions.sh
source "$(dirname "$0")/lib.sh"

say "building; creating the log's key; starting a witness that follows it"
build
start_log
stop_log
start_witness witness.example/w1
printf 'log %s\nwitness w1 %s %s\nquorum w1\n' "$(cat "$VKEY")" "$WITNESS_VKEY" "$WITNESS_URL" >"$work/policy"
cat "$work/policy"

say "starting the log with the witness policy: receipts carry the witness's cosignature"
start_log --witness_policy_file "$work/policy"

say "the model is deployed"
model=$(post_event '{
  "type": "model.deployed", "actor": "mlops@example.com", "subject": "model/credit-v7",
  "occurred_at": "2026-03-01T06:00:00Z",
  "data": {"version": "7.2.0", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "threshold": 0.62}
}')

say "the model decides on three applications (private: personal data)"
for n in 1 2 3; do
	score=$((550 + n * 60))
	decision=$([ $score -ge 640 ] && echo approve || echo decline)
	h=$(post_event '{
	  "type": "loan.decision", "actor": "model:credit-v7", "subject": "application/2026-'"$n"'",
	  "occurred_at": "2026-03-0'"$n"'T10:00:00Z", "private": true, "id": "decision-2026-'"$n"'",
	  "refs": ["'"$(b64 "$model")"'"],
	  "data": {"applicant": {"name": "Applicant '"$n"'", "income": '"$((30000 + n * 7000))"'}, "score": '"$score"', "decision": "'"$decision"'"}
	}')
	echo "application/2026-$n: $decision, leaf hash $h"
	eval "decision$n=$h"
done

say "a credit officer overrides the decline of application 1"
post_event '{
  "type": "loan.override", "actor": "officer:jdoe", "subject": "application/2026-1",
  "occurred_at": "2026-03-05T16:30:00Z", "refs": ["'"$(b64 "$decision1")"'"],
  "data": {"decision": "approve", "reason_code": "R-17 additional collateral"}
}' >/dev/null

say "applicant 2 asks for erasure (GDPR Art. 17): the data and salt are deleted"
# shellcheck disable=SC2154 # set by eval above
curl -sS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
	--data-binary '{"by": "dpo@example.com", "reason": "GDPR Art. 17 request 2026-118"}' \
	"$LOG/v1/events/$decision2/erase" | sed -E 's/.*"erased":(\{[^}]*\}).*/erased: \1/'

say "the evidence bundle of the model's decisions in March, verified with the witness policy"
evident evidence export --log "$LOG" --token_file "$TOKEN_FILE" --actor model:credit-v7 --type loan.decision \
	--from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z \
	--log_key "$VKEY" --policy "$work/policy" --out "$work/credit-v7-march.evidence.json" --report "$work/credit-v7-march.report.md"
evident evidence verify --log_key "$VKEY" --policy "$work/policy" "$work/credit-v7-march.evidence.json"
echo "bundle: $work/credit-v7-march.evidence.json, report: $work/credit-v7-march.report.md"
