package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
)

// receiptFixture is a log of 13 entries with three witnesses.
type receiptFixture struct {
	keys *testKeys
	tree *testTree
	c    Checkpoint
}

func newReceiptFixture(t testing.TB) *receiptFixture {
	k := newTestKeys(t, "example.com/log")
	tree := newTestTree(13)
	return &receiptFixture{keys: k, tree: tree, c: Checkpoint{Origin: "example.com/log", Size: 13, Hash: tree.root(0, 13)}}
}

func (f *receiptFixture) receipt(t testing.TB, i uint64, ws ...int) *Receipt {
	return &Receipt{Index: i, Proof: f.tree.inclusion(i, 0, f.c.Size), Checkpoint: f.keys.signed(t, f.c, ws...)}
}

func TestParseReceiptAccepts(t *testing.T) {
	f := newReceiptFixture(t)
	tests := []struct {
		name string
		r    *Receipt
	}{
		{"plain", f.receipt(t, 5, 0, 1)},
		{"with extra", &Receipt{Extra: []byte("age-v1.2.1-darwin-arm64.tar.gz"), Index: 0, Proof: f.tree.inclusion(0, 0, 13), Checkpoint: f.keys.signed(t, f.c)}},
		{"empty extra", &Receipt{Extra: []byte{}, Index: 12, Proof: f.tree.inclusion(12, 0, 13), Checkpoint: f.keys.signed(t, f.c)}},
		{"empty proof", &Receipt{Index: 0, Checkpoint: f.keys.signed(t, Checkpoint{Origin: "example.com/log", Size: 1, Hash: f.tree.leaves[0]})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.r.Marshal()
			got, err := ParseReceipt(b)
			if err != nil {
				t.Fatalf("ParseReceipt: %v\n%s", err, b)
			}
			if diff := cmp.Diff(tt.r, got); diff != "" {
				t.Errorf("ParseReceipt diff (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got.Marshal(), b) {
				t.Errorf("Marshal(ParseReceipt(b)) != b")
			}
		})
	}
}

func TestParseReceiptRejects(t *testing.T) {
	f := newReceiptFixture(t)
	good := string(f.receipt(t, 5, 0).Marshal())
	header, rest, _ := strings.Cut(good, "\n")
	idxLine, rest, _ := strings.Cut(rest, "\n")
	proofPart, note, _ := strings.Cut(rest, "\n\n")
	proofLines := strings.Split(proofPart, "\n")
	build := func(parts ...string) string { return strings.Join(parts, "\n") + "\n\n" + note }
	hash := proofLines[0]
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"header only", header + "\n"},
		{"wrong header", strings.Replace(good, "tlog-proof@v1", "tlog-proof@v2", 1)},
		{"header with CR", strings.Replace(good, "@v1\n", "@v1\r\n", 1)},
		{"no index", build(header, proofPart)},
		{"index leading zero", build(header, "index 05", proofPart)},
		{"index sign", build(header, "index +5", proofPart)},
		{"index negative", build(header, "index -5", proofPart)},
		{"index empty", build(header, "index ", proofPart)},
		{"index two spaces", build(header, "index  5", proofPart)},
		{"index overflow", build(header, "index 18446744073709551616", proofPart)},
		{"extra after index", build(header, idxLine, "extra AAAA", proofPart)},
		{"extra not base64", build(header, "extra !!!", idxLine, proofPart)},
		{"extra non-canonical", build(header, "extra AB==", idxLine, proofPart)},
		{"two extras", build(header, "extra AAAA", "extra AAAA", idxLine, proofPart)},
		{"hash short", build(header, idxLine, hash[:40]+"==")},
		{"hash 31 bytes", build(header, idxLine, b64(make([]byte, 31)))},
		{"hash not canonical", build(header, idxLine, hash[:42]+string(flipLowBits(hash[42]))+"=")},
		{"hash with space", build(header, idxLine, hash+" ")},
		{"too many hashes", build(header, idxLine, strings.TrimSuffix(strings.Repeat(hash+"\n", MaxProofHashes+1), "\n"))},
		{"no blank line", header + "\n" + idxLine + "\n" + proofPart + "\n" + note},
		{"two blank lines", build(header, idxLine, proofPart+"\n")},
		{"no checkpoint", build(header, idxLine, proofPart)[:len(build(header, idxLine, proofPart))-len(note)]},
		{"checkpoint without signatures", build(header, idxLine, proofPart)[:len(build(header, idxLine, proofPart))-len(note)] + string(f.c.Marshal())},
		{"trailing junk", good + "junk\n"},
		{"trailing blank line", good + "\n"},
		{"trailing note", good + "\n" + note},
		{"missing final newline", strings.TrimSuffix(good, "\n")},
		{"bad checkpoint body", strings.Replace(good, "\n13\n", "\n013\n", 1)},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n")},
		{"oversize", good + strings.Repeat("— x AAAAAAAAAAA=\n", MaxNoteSize/16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseReceipt([]byte(tt.text))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseReceipt = %+v, %v; want ErrMalformed", r, err)
			}
		})
	}
}

func TestVerifyReceipt(t *testing.T) {
	f := newReceiptFixture(t)
	k := f.keys
	policy2of3 := mustPolicy(t, fmt.Sprintf("log %s\nwitness A %s\nwitness B %s\nwitness C %s\ngroup g 2 A B C\nquorum g\n",
		k.logVKey, k.wVKeys[0], k.wVKeys[1], k.wVKeys[2]))
	for i := range f.c.Size {
		r := f.receipt(t, i, 0, 2)
		s, err := VerifyReceipt(r, entry(int(i)), k.logVerifier, policy2of3)
		if err != nil {
			t.Fatalf("VerifyReceipt(%d): %v", i, err)
		}
		if got := policy2of3.Cosigners(s); !cmp.Equal(got, []string{"A", "C"}) {
			t.Errorf("Cosigners = %q, want [A C]", got)
		}
	}
	other := newTestKeys(t, "example.com/log")
	otherPolicy := mustPolicy(t, fmt.Sprintf("log %s\nquorum none\n", other.logVKey))
	r := f.receipt(t, 4, 0, 2)
	editedBody := *r
	editedBody.Checkpoint = bytes.Replace(r.Checkpoint, []byte("\n13\n"), []byte("\n14\n"), 1)
	wrongIndex := *r
	wrongIndex.Index = 5
	changedProof := *r
	changedProof.Proof = cloneProof(r.Proof)
	changedProof.Proof[1][0] ^= 1
	noLogSig := *r
	noLogSig.Checkpoint = removeLine(t, r.Checkpoint, 0)
	oneCosig := *r
	oneCosig.Checkpoint = removeLine(t, r.Checkpoint, 1)
	otherLog := *r
	otherLog.Checkpoint = other.signed(t, f.c, 0, 2)
	flipped := []byte(entry(4))
	flipped[0] ^= 1
	tests := []struct {
		name    string
		r       *Receipt
		entry   []byte
		key     *testKeys
		policy  *Policy
		want    error
		missing []string
	}{
		{"no policy", r, entry(4), k, nil, nil, nil},
		{"quorum none", r, entry(4), k, mustPolicy(t, "quorum none\n"), nil, nil},
		{"entry byte flipped", r, flipped, k, policy2of3, ErrInclusion, nil},
		{"other entry", r, entry(5), k, policy2of3, ErrInclusion, nil},
		{"index changed", &wrongIndex, entry(4), k, policy2of3, ErrInclusion, nil},
		{"proof hash changed", &changedProof, entry(4), k, policy2of3, ErrInclusion, nil},
		{"checkpoint body edited", &editedBody, entry(4), k, policy2of3, ErrSignature, nil},
		{"log signature removed", &noLogSig, entry(4), k, policy2of3, ErrSignature, nil},
		{"signed by another key", &otherLog, entry(4), k, nil, ErrSignature, nil},
		{"wrong log key", r, entry(4), other, nil, ErrSignature, nil},
		{"log key not in policy", r, entry(4), k, otherPolicy, ErrSignature, nil},
		{"cosignature removed below quorum", &oneCosig, entry(4), k, policy2of3, ErrQuorum, []string{"A", "B"}},
		{"nil receipt", nil, entry(4), k, nil, ErrMalformed, nil},
		{"nil key, policy without logs", r, entry(4), nil, mustPolicy(t, "quorum none\n"), ErrSignature, nil},
		{"nil key, policy with another log", r, entry(4), nil, otherPolicy, ErrSignature, nil},
		{"nil key, no policy", r, entry(4), nil, nil, ErrSignature, nil},
		{"nil key from policy", r, entry(4), nil, policy2of3, nil, nil},
		{"nil key, two logs of one origin", r, entry(4), nil, mustPolicy(t, fmt.Sprintf("log %s\nlog %s\nquorum none\n", other.logVKey, k.logVKey)), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var key note.Verifier
			if tt.key != nil {
				key = tt.key.logVerifier
			}
			s, err := VerifyReceipt(tt.r, tt.entry, key, tt.policy)
			if tt.want == nil {
				if err != nil || s == nil || s.Size != f.c.Size {
					t.Errorf("VerifyReceipt = %+v, %v; want success", s, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyReceipt = %+v, %v; want %v", s, err, tt.want)
			}
			var qe *QuorumError
			if errors.As(err, &qe) {
				if diff := cmp.Diff(tt.missing, qe.Missing); diff != "" {
					t.Errorf("QuorumError.Missing diff (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestCosignersByKeyNotPolicyName checks that a witness whose key name equals
// another witness's policy name gets no credit for that other witness.
func TestCosignersByKeyNotPolicyName(t *testing.T) {
	f := newReceiptFixture(t)
	k := f.keys
	// Witness 0's key is named "witness0.example"; give that name to the
	// policy entry of witness 1, and require witness 1 alone.
	p := mustPolicy(t, fmt.Sprintf("witness witness0.example %s\nwitness other %s\nquorum witness0.example\n", k.wVKeys[1], k.wVKeys[0]))
	r := f.receipt(t, 3, 0) // cosigned by witness 0 only
	_, err := VerifyReceipt(r, entry(3), k.logVerifier, p)
	var qe *QuorumError
	if !errors.As(err, &qe) || !cmp.Equal(qe.Missing, []string{"witness0.example"}) {
		t.Errorf("VerifyReceipt = %v, want QuorumError{witness0.example}", err)
	}
}

func mustPolicy(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// removeLine removes signature line i from a signed note.
func removeLine(t testing.TB, n []byte, i int) []byte {
	t.Helper()
	body, lines, err := SplitNote(n)
	if err != nil {
		t.Fatal(err)
	}
	out := append(bytes.Clone(body), '\n')
	for j, l := range lines {
		if j != i {
			out = append(out, l...)
		}
	}
	return out
}
