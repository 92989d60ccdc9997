package event

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

// Report writes a bundle's readable account in Markdown: what it holds,
// what was proven (when res, the result of VerifyBundle, is not nil) and how
// anyone checks it again. The report is prose for people, not evidence.
func Report(bu *Bundle, res *BundleResult) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Evidence bundle\n\n")
	p("- Log: `%s`\n", md(bu.Origin))
	p("- Made: %s\n", md(bu.CreatedAt))
	p("- Selected: %s\n", describeQuery(bu.Query))
	p("- Events: %d", len(bu.Events))
	if bu.Pending > 0 {
		p(" (and %d not yet covered by a checkpoint, left out)", bu.Pending)
	}
	p("\n\n")
	if res == nil {
		p("**This bundle has not been verified.** Verify it before relying on it (below).\n\n")
	} else {
		l := res.Latest
		p("## What was verified\n\n")
		p("Verified offline with the log's public key `%s`", md(l.Origin))
		if res.QuorumChecked {
			p(" and a witness policy")
		}
		p(":\n\n")
		p("1. The log's latest checkpoint (tree size %d, root `%s`) carries a valid signature by the log", l.Size, base64.StdEncoding.EncodeToString(l.Hash[:]))
		if res.QuorumChecked {
			p(" and cosignatures meeting the witness quorum: %s", cosigners(l))
		} else {
			p(" (witness cosignatures were not checked against a policy)")
		}
		p(".\n")
		p("2. Every event below is included in the log: its receipt's Merkle inclusion proof leads from the event's exact bytes to a signed, cosigned checkpoint.\n")
		p("3. Every such checkpoint is consistent with the latest: the log has only appended since; nothing was changed or removed.\n")
		p("4. Each private event's data and salt, where given, open the commitment in its entry; erased events show when, by whom and why.\n\n")
		p("A witness's cosignature time proves the checkpoint, and so every event in it, existed by then.\n\n")
		p("| index | occurred at | type | actor | subject | data | first cosigned checkpoint |\n|---|---|---|---|---|---|---|\n")
		for _, ve := range res.Events {
			e := ve.Event
			p("| %d | %s | %s | %s | %s | %s | size %d, %s |\n", ve.Index, FormatTime(e.OccurredAt), md(e.Type), md(e.Actor), md(e.Subject),
				dataStatus(&ve), ve.Checkpoint.Size, cosigners(ve.Checkpoint))
		}
		p("\n")
	}
	p("## What this does not prove\n\n")
	p("That the log holds no *other* event the selection would match: the bundle holds what the exporter selected. ")
	p("An auditor who needs completeness runs `evident audit` over the whole log. ")
	p("Nor that an event's content is true: only that these exact bytes were logged, unchanged, by the time shown.\n\n")
	p("## How to check it\n\n")
	p("With the log's public key (from its operator, not from this file) and the witness policy you trust:\n\n")
	p("```sh\nevident evidence verify --log_key LOG.vkey --policy POLICY BUNDLE.json\n```\n\n")
	p("Each entry is the event's RFC 8785 canonical JSON; its leaf hash is SHA-256(0x00 || entry). ")
	p("A private event's `data_commitment` is SHA-256(salt || canonical data). ")
	p("Each receipt is a C2SP tlog-proof file, which `evident verify --entry` also checks alone.\n")
	return b.String()
}

func describeQuery(q BundleQuery) string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"subject", q.Subject}, {"type", q.Type}, {"actor", q.Actor},
		{"occurred from", q.From}, {"occurred before", q.To}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s `%s`", f.k, md(f.v)))
		}
	}
	if len(parts) == 0 {
		return "every event"
	}
	return strings.Join(parts, ", ")
}

func dataStatus(ve *VerifiedEvent) string {
	switch {
	case !ve.Event.Private():
		return "public, in the entry"
	case ve.Erased != nil:
		s := fmt.Sprintf("erased at %s by %s", md(ve.Erased.At), md(ve.Erased.By))
		if ve.Erased.Reason != "" {
			s += " (" + md(ve.Erased.Reason) + ")"
		}
		return s
	case ve.DataVerified:
		return "private, opened and verified"
	}
	return "private, not included"
}

func cosigners(s *checkpoint.Signed) string {
	if len(s.Cosignatures) == 0 {
		return "no witness cosignatures"
	}
	var c []string
	for _, cs := range s.Cosignatures {
		c = append(c, fmt.Sprintf("%s at %s", md(cs.Name), cs.Time.UTC().Format(time.RFC3339)))
	}
	return "cosigned by " + strings.Join(c, ", ")
}

// md makes text safe in a Markdown table cell or code span.
func md(s string) string {
	r := strings.NewReplacer("|", "\\|", "`", "'", "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
