package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
)

// testKeys holds a log key and three witness keys.
type testKeys struct {
	logSigner   note.Signer
	logVerifier note.Verifier
	logVKey     string
	wSigners    []note.Signer
	wVerifiers  []note.Verifier
	wVKeys      []string
}

func newTestKeys(t testing.TB, origin string) *testKeys {
	t.Helper()
	k := &testKeys{}
	skey, vkey, err := GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	k.logVKey = vkey
	if k.logSigner, err = NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if k.logVerifier, err = NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		skey, vkey, err := GenerateCosignerKey(fmt.Sprintf("witness%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := newCosigner(skey, func() time.Time { return time.Unix(1700000000+int64(i), 0) })
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewCosignatureVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		k.wSigners = append(k.wSigners, s)
		k.wVerifiers = append(k.wVerifiers, v)
		k.wVKeys = append(k.wVKeys, vkey)
	}
	return k
}

// signed returns a note of c signed by the log and cosigned by witnesses ws.
func (k *testKeys) signed(t testing.TB, c Checkpoint, ws ...int) []byte {
	t.Helper()
	n, err := Sign(c, k.logSigner)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		line, err := SignatureLine(c.Marshal(), k.wSigners[w])
		if err != nil {
			t.Fatal(err)
		}
		if n, err = AppendSignatures(n, line); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func TestOpen(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	c := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash}
	n := k.signed(t, c, 0, 2)
	s, err := Open(n, k.logVerifier, k.wVerifiers...)
	if err != nil {
		t.Fatal(err)
	}
	want := &Signed{Checkpoint: c, Note: n, Cosignatures: []Cosignature{
		{Name: "witness0.example", KeyHash: k.wVerifiers[0].KeyHash(), Time: time.Unix(1700000000, 0).UTC()},
		{Name: "witness2.example", KeyHash: k.wVerifiers[2].KeyHash(), Time: time.Unix(1700000002, 0).UTC()},
	}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Open diff (-want +got):\n%s", diff)
	}
	// Witness verifiers that are not given are unknown keys: ignored.
	s, err = Open(n, k.logVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cosignatures) != 0 {
		t.Errorf("Open without witnesses: Cosignatures = %v, want none", s.Cosignatures)
	}
}

func TestOpenRejects(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	other := newTestKeys(t, "example.com/log")
	otherOrigin := newTestKeys(t, "example.com/other")
	c := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash}
	good := string(k.signed(t, c, 0))
	body := string(c.Marshal())
	lines := strings.SplitAfter(strings.TrimPrefix(good, body+"\n"), "\n")
	logLine, wLine := lines[0], lines[1]
	unknown := "— unknown.example " + base64.StdEncoding.EncodeToString(make([]byte, 68)) + "\n"
	flipped := flipSig(logLine)
	tests := []struct {
		name string
		note string
		key  note.Verifier
		want error
	}{
		{"no signatures", body + "\n", k.logVerifier, ErrMalformed},
		{"no blank line", body + logLine, k.logVerifier, ErrMalformed},
		{"missing final newline", strings.TrimSuffix(good, "\n"), k.logVerifier, ErrMalformed},
		{"extra blank line at end", good + "\n", k.logVerifier, ErrMalformed},
		{"two blank lines before signatures", body + "\n\n" + logLine, k.logVerifier, ErrMalformed},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n"), k.logVerifier, ErrMalformed},
		{"CR in signature line", body + "\n" + strings.TrimSuffix(logLine, "\n") + "\r\n", k.logVerifier, ErrMalformed},
		{"hyphen instead of em dash", body + "\n" + "-" + strings.TrimPrefix(logLine, "—"), k.logVerifier, ErrMalformed},
		{"no space after dash", body + "\n" + "—" + strings.TrimPrefix(logLine, "— "), k.logVerifier, ErrMalformed},
		{"two spaces", body + "\n" + strings.Replace(logLine, " ", "  ", 2), k.logVerifier, ErrMalformed},
		{"name only", body + "\n— example.com/log\n", k.logVerifier, ErrMalformed},
		{"empty signature", body + "\n— example.com/log \n", k.logVerifier, ErrMalformed},
		{"short signature", body + "\n— example.com/log AAAA\n", k.logVerifier, ErrMalformed},
		{"signature not base64", body + "\n— example.com/log !!!!\n", k.logVerifier, ErrMalformed},
		{"signature unpadded", body + "\n" + strings.TrimRight(logLine, "=\n") + "\n", k.logVerifier, ErrMalformed},
		{"trailing space", body + "\n" + strings.TrimSuffix(logLine, "\n") + " \n", k.logVerifier, ErrMalformed},
		{"junk after signatures", good + "junk\n", k.logVerifier, ErrMalformed},
		{"oversize", body + "\n" + logLine + strings.Repeat(unknown, MaxNoteSize/len(unknown)+1), k.logVerifier, ErrMalformed},
		{"too many signatures", body + "\n" + logLine + strings.Repeat(unknown, MaxSignatures), k.logVerifier, ErrMalformed},
		{"bad body", "example.com/log\n07\n" + someB64 + "\n\n" + logLine, k.logVerifier, ErrMalformed},
		{"only unknown signatures", body + "\n" + unknown, k.logVerifier, ErrSignature},
		{"only witness signature", body + "\n" + wLine, k.logVerifier, ErrSignature},
		{"signature flipped", body + "\n" + flipped, k.logVerifier, ErrSignature},
		{"bad log signature before good one", body + "\n" + flipped + logLine, k.logVerifier, ErrSignature},
		{"other key same name", good, other.logVerifier, ErrSignature},
		{"key name differs from origin", good, otherOrigin.logVerifier, ErrSignature},
		{"nil key", good, nil, ErrSignature},
		{"edited body", strings.Replace(good, "\n7\n", "\n8\n", 1), k.logVerifier, ErrSignature},
		{"bad witness cosignature", body + "\n" + logLine + flipSig(wLine), k.logVerifier, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open([]byte(tt.note), tt.key, k.wVerifiers...)
			if !errors.Is(err, tt.want) {
				t.Errorf("Open = %+v, %v; want %v", s, err, tt.want)
			}
		})
	}
}

// flipSig changes one bit of the signature proper in a signature line.
func flipSig(line string) string {
	i := strings.LastIndexByte(line, ' ')
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line[i+1:], "\n"))
	if err != nil {
		panic(err)
	}
	raw[len(raw)-1] ^= 1
	return line[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n"
}

func TestOpenIgnores(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	other := newTestKeys(t, "example.com/log")
	c := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash}
	good := string(k.signed(t, c, 1))
	body := string(c.Marshal())
	lines := strings.SplitAfter(strings.TrimPrefix(good, body+"\n"), "\n")
	logLine, wLine := lines[0], lines[1]
	otherLine := strings.TrimPrefix(string(other.signed(t, c)), body+"\n")
	// Same name as the log key, other key ID: unknown, ignored.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(logLine[strings.LastIndexByte(logLine, ' ')+1:], "\n"))
	raw[0] ^= 0xff
	sameNameOtherID := "— example.com/log " + base64.StdEncoding.EncodeToString(raw) + "\n"
	// Same key ID as the log key, other name: unknown, ignored.
	sameIDOtherName := "— example.com/imposter " + base64.StdEncoding.EncodeToString(raw[:0:0]) + logLine[strings.LastIndexByte(logLine, ' ')+1:]
	tests := []struct {
		name  string
		note  string
		nCosi int
	}{
		{"unknown first", body + "\n" + otherLine + logLine, 0},
		{"same name other key ID", body + "\n" + sameNameOtherID + logLine, 0},
		{"same key ID other name", body + "\n" + sameIDOtherName + logLine, 0},
		{"duplicate log line", body + "\n" + logLine + logLine, 0},
		{"duplicate witness line", body + "\n" + logLine + wLine + wLine, 1},
		{"witness before log", body + "\n" + wLine + logLine, 1},
		{"many unknown", body + "\n" + strings.Repeat(otherLine, MaxSignatures-1) + logLine, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open([]byte(tt.note), k.logVerifier, k.wVerifiers...)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if len(s.Cosignatures) != tt.nCosi {
				t.Errorf("Open: %d cosignatures, want %d", len(s.Cosignatures), tt.nCosi)
			}
			if string(s.Note) != tt.note {
				t.Errorf("Open: Note is not the input verbatim")
			}
		})
	}
}

func TestSplitNote(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	c := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash, Extensions: []string{"ext"}}
	n := k.signed(t, c, 0, 1)
	body, lines, err := SplitNote(n)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, c.Marshal()) {
		t.Errorf("body = %q, want %q", body, c.Marshal())
	}
	if len(lines) != 3 {
		t.Fatalf("%d signature lines, want 3", len(lines))
	}
	joined := append(append(bytes.Clone(body), '\n'), bytes.Join(lines, nil)...)
	if !bytes.Equal(joined, n) {
		t.Errorf("body + blank line + signature lines != note")
	}
	for _, l := range lines {
		if !bytes.HasPrefix(l, []byte("— ")) || !bytes.HasSuffix(l, []byte("\n")) {
			t.Errorf("signature line %q is not \"— ...\\n\"", l)
		}
	}
}

func TestSignRejects(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	tests := []struct {
		name string
		c    Checkpoint
		want error
	}{
		{"origin differs from key name", Checkpoint{Origin: "example.com/other", Size: 1, Hash: someHash}, ErrSignature},
		{"empty origin", Checkpoint{Origin: "", Size: 1, Hash: someHash}, ErrMalformed},
		{"origin with newline", Checkpoint{Origin: "example.com/log\n1", Size: 1, Hash: someHash}, ErrMalformed},
		{"size 0 with other root", Checkpoint{Origin: "example.com/log", Size: 0, Hash: someHash}, ErrMalformed},
		{"empty extension", Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash, Extensions: []string{""}}, ErrMalformed},
		{"extension with blank line", Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash, Extensions: []string{"a\n\nb"}}, ErrMalformed},
		{"extension with newline", Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash, Extensions: []string{"a\nb"}}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Sign(tt.c, k.logSigner)
			if !errors.Is(err, tt.want) {
				t.Errorf("Sign = %q, %v; want %v", n, err, tt.want)
			}
		})
	}
}

func TestAppendSignatures(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	c := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash}
	n := k.signed(t, c)
	l0, err := SignatureLine(c.Marshal(), k.wSigners[0])
	if err != nil {
		t.Fatal(err)
	}
	l1, err := SignatureLine(c.Marshal(), k.wSigners[1])
	if err != nil {
		t.Fatal(err)
	}
	got, err := AppendSignatures(n, l0, l1, l0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := AppendSignatures(got, l1, l0)
	if err != nil {
		t.Fatal(err)
	}
	want := string(n) + string(l0) + string(l1)
	if string(got) != want || string(again) != want {
		t.Errorf("AppendSignatures = %q then %q, want %q", got, again, want)
	}
	for _, bad := range []string{
		"", "\n", "— w1 AAAAAA==\n", "— w1 AAAAAAAA", "- w1 AAAAAAAAAAA=\n", "— w1 AAAAAAAAAAA=\n— w2 AAAAAAAAAAA=\n",
		"— w1 AAAAAAAAAAA=\r\n", "— w\x01 AAAAAAAAAAA=\n", "— w+1 AAAAAAAAAAA=\n",
	} {
		if out, err := AppendSignatures(n, []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("AppendSignatures(%q) = %q, %v; want ErrMalformed", bad, out, err)
		}
	}
	if out, err := AppendSignatures([]byte("not a note"), l0); !errors.Is(err, ErrMalformed) {
		t.Errorf("AppendSignatures(bad note) = %q, %v; want ErrMalformed", out, err)
	}
	// The input note is not modified.
	if string(n) != strings.TrimSuffix(want, string(l0)+string(l1)) {
		t.Errorf("AppendSignatures modified its input")
	}
}

func TestVerifySignatureLine(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	body := Checkpoint{Origin: "example.com/log", Size: 7, Hash: someHash}.Marshal()
	line, err := SignatureLine(body, k.wSigners[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatureLine(body, line, k.wVerifiers[0]); err != nil {
		t.Errorf("VerifySignatureLine: %v", err)
	}
	other := Checkpoint{Origin: "example.com/log", Size: 8, Hash: someHash}.Marshal()
	tests := []struct {
		name string
		body []byte
		line []byte
		v    note.Verifier
		want error
	}{
		{"other witness", body, line, k.wVerifiers[1], ErrSignature},
		{"other body", other, line, k.wVerifiers[0], ErrSignature},
		{"flipped", body, []byte(flipSig(string(line))), k.wVerifiers[0], ErrSignature},
		{"malformed", body, line[:len(line)-1], k.wVerifiers[0], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifySignatureLine(tt.body, tt.line, tt.v); !errors.Is(err, tt.want) {
				t.Errorf("VerifySignatureLine = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignatureLineRejectsNonCheckpoint(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	for _, body := range []string{"", "hello\n", "example.com/log\n01\n" + someB64 + "\n"} {
		if l, err := SignatureLine([]byte(body), k.wSigners[0]); !errors.Is(err, ErrMalformed) {
			t.Errorf("SignatureLine(%q) = %q, %v; want ErrMalformed", body, l, err)
		}
		if sig, err := k.wSigners[0].Sign([]byte(body)); err == nil {
			t.Errorf("cosigner.Sign(%q) = %x, want error", body, sig)
		}
	}
}
