package checkpoint

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// policyKeys returns n witness vkeys and a log vkey.
func policyKeys(t testing.TB, n int) (logVKey string, w []string) {
	t.Helper()
	_, logVKey, err := GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, vkey, err := GenerateCosignerKey(fmt.Sprintf("w%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		w = append(w, vkey)
	}
	return logVKey, w
}

func TestParsePolicy(t *testing.T) {
	logVKey, w := policyKeys(t, 6)
	text := fmt.Sprintf(`# Example policy
log %s https://log.example/

witness X1 %s https://x1.example/
witness X2 %s
	witness  X3	%s
group X-witnesses 2 X1 X2 X3
  # indented comment
witness Y1 %s
witness Y2 %s
group Y-witnesses any Y1 Y2

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`, logVKey, w[0], w[1], w[2], w[3], w[4])
	p, err := ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var names, vkeys, urls []string
	for _, w := range p.Witnesses() {
		names, vkeys, urls = append(names, w.Name), append(vkeys, w.VKey), append(urls, w.URL)
	}
	if diff := cmp.Diff([]string{"X1", "X2", "X3", "Y1", "Y2"}, names); diff != "" {
		t.Errorf("witness names diff:\n%s", diff)
	}
	if diff := cmp.Diff(w[:5], vkeys); diff != "" {
		t.Errorf("witness vkeys diff:\n%s", diff)
	}
	if diff := cmp.Diff([]string{"https://x1.example/", "", "", "", ""}, urls); diff != "" {
		t.Errorf("witness URLs diff:\n%s", diff)
	}
	logs := p.Logs()
	if len(logs) != 1 || logs[0].VKey != logVKey || logs[0].URL != "https://log.example/" || logs[0].Verifier.Name() != "example.com/log" {
		t.Errorf("Logs = %+v", logs)
	}
	if got := len(p.Verifiers()); got != 5 {
		t.Errorf("%d verifiers, want 5", got)
	}
	tests := []struct {
		cosigners []string
		ok        bool
		missing   []string
	}{
		{nil, false, []string{"X1", "X2", "X3", "Y1", "Y2"}},
		{[]string{"X1", "X2"}, false, []string{"Y1", "Y2"}},
		{[]string{"Y2"}, false, []string{"X1", "X2", "X3"}},
		{[]string{"X3", "Y2"}, false, []string{"X1", "X2"}},
		{[]string{"X1", "X3", "Y2"}, true, nil},
		{[]string{"X1", "X2", "X3", "Y1", "Y2"}, true, nil},
		{[]string{"X1", "X1", "Y1"}, false, []string{"X2", "X3"}},
		{[]string{"X-witnesses", "Y-witnesses"}, false, []string{"X1", "X2", "X3", "Y1", "Y2"}},
		{[]string{"x1", "x2", "y1"}, false, []string{"X1", "X2", "X3", "Y1", "Y2"}},
	}
	for _, tt := range tests {
		if got := p.Satisfied(tt.cosigners); got != tt.ok {
			t.Errorf("Satisfied(%q) = %v, want %v", tt.cosigners, got, tt.ok)
		}
		if diff := cmp.Diff(tt.missing, p.Missing(tt.cosigners)); diff != "" {
			t.Errorf("Missing(%q) diff (-want +got):\n%s", tt.cosigners, diff)
		}
	}
}

func TestParsePolicyQuorum(t *testing.T) {
	_, w := policyKeys(t, 2)
	tests := []struct {
		name      string
		text      string
		cosigners []string
		ok        bool
	}{
		{"none", "quorum none\n", nil, true},
		{"none with witnesses", "witness A " + w[0] + "\nquorum none", nil, true},
		{"single witness", "witness A " + w[0] + "\nquorum A\n", nil, false},
		{"single witness cosigned", "witness A " + w[0] + "\nquorum A\n", []string{"A"}, true},
		{"other witness cosigned", "witness A " + w[0] + "\nwitness B " + w[1] + "\nquorum A\n", []string{"B"}, false},
		{"no final newline", "witness A " + w[0] + "\nquorum A", []string{"A"}, true},
		{"1 of 2", "witness A " + w[0] + "\nwitness B " + w[1] + "\ngroup g 1 A B\nquorum g\n", []string{"B"}, true},
		{"2 of 2 missing one", "witness A " + w[0] + "\nwitness B " + w[1] + "\ngroup g 2 A B\nquorum g\n", []string{"B"}, false},
		{"tab separated", "witness\tA\t" + w[0] + "\t\nquorum\tA\n", []string{"A"}, true},
		{"non-ASCII name", "witness Ä " + w[0] + "\nquorum Ä\n", []string{"Ä"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Satisfied(tt.cosigners); got != tt.ok {
				t.Errorf("Satisfied(%q) = %v, want %v", tt.cosigners, got, tt.ok)
			}
			if got := p.Missing(tt.cosigners); (len(got) == 0) != tt.ok {
				t.Errorf("Missing(%q) = %q, inconsistent with Satisfied = %v", tt.cosigners, got, tt.ok)
			}
		})
	}
}

func TestParsePolicyRejects(t *testing.T) {
	logVKey, w := policyKeys(t, 3)
	A, B, C := "witness A "+w[0]+"\n", "witness B "+w[1]+"\n", "witness C "+w[2]+"\n"
	// The same public key as w[0] under another name and key ID.
	renamed := renameVKey(t, w[0], "renamed.example", 0x04)
	logAsWitness := renameVKey(t, logVKey, "example.com/log", 0x04)
	tests := []struct {
		name string
		text string
		line int    // line number the error must name (0: none)
		what string // substring of the error
	}{
		{"empty", "", 0, "no quorum"},
		{"comments only", "# nothing\n\n", 0, "no quorum"},
		{"no quorum", A, 0, "no quorum"},
		{"two quorums", A + "quorum A\nquorum none\n", 3, "second quorum"},
		{"quorum undefined", "quorum A\n", 1, "not defined"},
		{"quorum before witness", "quorum A\n" + A, 1, "not defined"},
		{"quorum without name", A + "quorum\n", 2, "quorum <name>"},
		{"quorum with two names", A + B + "quorum A B\n", 3, "quorum <name>"},
		{"unknown keyword", A + "witnesses B " + w[1] + "\nquorum A\n", 2, "unknown keyword"},
		{"keyword case", "Witness A " + w[0] + "\nquorum A\n", 1, "unknown keyword"},
		{"trailing comment", "witness A " + w[0] + " # comment\nquorum A\n", 1, "witness <name> <vkey> [<url>]"},
		{"witness without key", "witness A\nquorum A\n", 1, "witness <name>"},
		{"witness bad key", "witness A " + w[0][:len(w[0])-4] + "\nquorum A\n", 1, "witness A"},
		{"log bad key", "log not-a-key\n" + A + "quorum A\n", 1, "log verifier key"},
		{"witness with log key type", "witness A " + logVKey + "\nquorum A\n", 1, "0x04"},
		{"witness named none", "witness none " + w[0] + "\nquorum none\n", 1, "reserved"},
		{"duplicate witness name", A + "witness A " + w[1] + "\nquorum A\n", 2, "already defined"},
		{"duplicate witness key", A + "witness Z " + renamed + "\nquorum A\n", 2, "same public key"},
		{"duplicate witness line", A + A + "quorum A\n", 2, "already defined"},
		{"log key reused as witness", "log " + logVKey + "\nwitness L " + logAsWitness + "\nquorum L\n", 2, "same public key"},
		{"log without key", "log\nquorum none\n", 1, "log <vkey>"},
		{"log with cosignature key", "log " + w[0] + "\nquorum none\n", 1, "log verifier key"},
		{"log too many fields", "log " + logVKey + " https://x/ extra\nquorum none\n", 1, "log <vkey>"},
		{"duplicate log", "log " + logVKey + "\nlog " + logVKey + " https://x/\nquorum none\n", 2, "same public key"},
		{"group without members", A + "group g any\nquorum g\n", 2, "group <name>"},
		{"group undefined member", A + "group g any A B\nquorum g\n", 2, "not defined"},
		{"group forward reference", "group g any A\n" + A + "quorum g\n", 1, "not defined"},
		{"group member none", A + "group g any A none\nquorum g\n", 2, "none"},
		{"group member twice", A + "group g 1 A A\nquorum g\n", 2, "already a member"},
		{"member of two groups", A + B + "group g any A B\ngroup h any A\nquorum g\n", 4, "already a member"},
		{"group threshold 0", A + B + "group g 0 A B\nquorum g\n", 3, "threshold"},
		{"group threshold above n", A + B + "group g 3 A B\nquorum g\n", 3, "threshold"},
		{"group threshold leading zero", A + B + "group g 01 A B\nquorum g\n", 3, "threshold"},
		{"group threshold sign", A + B + "group g +1 A B\nquorum g\n", 3, "threshold"},
		{"group threshold word", A + B + "group g some A B\nquorum g\n", 3, "threshold"},
		{"group threshold case", A + B + "group g ANY A B\nquorum g\n", 3, "threshold"},
		{"group named like witness", A + B + "group A any B\nquorum A\n", 3, "already defined"},
		{"group named none", A + "group none any A\nquorum none\n", 2, "reserved"},
		{"self reference", A + "group g any g\nquorum g\n", 2, "not defined"},
		{"CR", "witness A " + w[0] + "\r\nquorum A\n", 1, "control character"},
		{"NUL", A + B + C + "quorum A\x00\n", 4, "control character"},
		{"DEL", A + "# \x7f\nquorum A\n", 2, "control character"},
		{"vertical tab separator", "witness\vA " + w[0] + "\nquorum A\n", 1, "control character"},
		{"oversize", strings.Repeat("#\n", MaxNoteSize) + "quorum none\n", 0, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.text))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParsePolicy = %v, %v; want ErrMalformed", p, err)
			}
			if tt.line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tt.line)) {
				t.Errorf("error %q does not name line %d", err, tt.line)
			}
			if !strings.Contains(err.Error(), tt.what) {
				t.Errorf("error %q does not say %q", err, tt.what)
			}
			if n := strings.Count(err.Error(), ErrMalformed.Error()); n != 1 {
				t.Errorf("error %q says %q %d times, want once", err, ErrMalformed, n)
			}
		})
	}
}

// renameVKey re-encodes vkey's public key under another name and type.
func renameVKey(t testing.TB, vkey, name string, alg byte) string {
	t.Helper()
	_, _, raw, err := splitKey(vkey, false)
	if err != nil {
		t.Fatal(err)
	}
	k := append([]byte{alg}, raw[1:]...)
	return fmt.Sprintf("%s+%08x+%s", name, keyID(name, k), b64(k))
}
