#!/usr/bin/env bash
# An approval flow, logged as typed events: a purchase order is requested,
# approved by a manager and by the CFO (whose comment is private, erasable
# data), then paid; each step refers to the one before it. It ends with an
# evidence bundle of the purchase order, exported and verified offline.
#
#   examples/approval-flow.sh        # in a temporary directory
#   EXAMPLE_DIR=/tmp/x examples/approval-flow.sh
source "$(dirname "$0")/lib.sh"

say "building and starting a log"
build
start_log

say "1. the purchase order is requested (public event)"
request=$(post_event '{
  "type": "purchase.requested", "actor": "erp:procurement", "subject": "po/2026-0042",
  "occurred_at": "2026-03-02T09:15:00+01:00", "id": "po-2026-0042-request",
  "data": {"amount": 18400, "currency": "EUR", "supplier": "Acme Servers GmbH", "cost_center": "IT-OPS"}
}')
echo "leaf hash $request"

say "2. the manager approves it, referring to the request"
manager=$(post_event '{
  "type": "purchase.approved", "actor": "alice@example.com", "subject": "po/2026-0042",
  "occurred_at": "2026-03-02T11:40:00+01:00", "id": "po-2026-0042-approval-1",
  "refs": ["'"$(b64 "$request")"'"],
  "data": {"level": 1, "limit": 25000}
}')
echo "leaf hash $manager"

say "3. the CFO approves; the comment names a person, so it is private"
cfo=$(post_event '{
  "type": "purchase.approved", "actor": "cfo@example.com", "subject": "po/2026-0042",
  "occurred_at": "2026-03-03T08:05:00+01:00", "id": "po-2026-0042-approval-2", "private": true,
  "refs": ["'"$(b64 "$manager")"'"],
  "data": {"level": 2, "comment": "approved on condition that Bob Example signs the delivery note"}
}')
echo "leaf hash $cfo; the log's entry holds only a commitment:"
curl -sS "$LOG/v1/events/$cfo" | sed -E 's/.*"entry":"(([^"\\]|\\.)*)".*/\1/; s/\\"/"/g'

say "4. the payment goes out, referring to the CFO's approval"
post_event '{
  "type": "payment.sent", "actor": "erp:treasury", "subject": "po/2026-0042",
  "occurred_at": "2026-03-10T14:00:00+01:00", "id": "po-2026-0042-payment",
  "refs": ["'"$(b64 "$cfo")"'"],
  "data": {"amount": 18400, "currency": "EUR", "transfer": "SEPA-2026-03-10-0007"}
}'

say "another purchase order, not in the bundle"
post_event '{"type": "purchase.requested", "actor": "erp:procurement", "subject": "po/2026-0043",
  "occurred_at": "2026-03-04T10:00:00Z", "data": {"amount": 120, "currency": "EUR"}}'

say "bad input is refused and stores nothing (a non-canonical number)"
curl -sS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" --data-binary '{"type":"t","actor":"a","subject":"s",
  "occurred_at":"2026-03-02T09:15:00Z","data":{"amount":18400.0}}' -w ' (HTTP %{http_code})\n' "$LOG/v1/events"

say "the evidence bundle of po/2026-0042, exported and verified"
evident evidence export --log "$LOG" --token_file "$TOKEN_FILE" --subject po/2026-0042 \
	--from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z \
	--log_key "$VKEY" --out "$work/po-2026-0042.evidence.json" --report "$work/po-2026-0042.report.md"
evident evidence verify --log_key "$VKEY" "$work/po-2026-0042.evidence.json"
echo "bundle: $work/po-2026-0042.evidence.json, report: $work/po-2026-0042.report.md"
