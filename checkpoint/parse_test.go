package checkpoint

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	emptyB64 = base64.StdEncoding.EncodeToString(EmptyRoot[:])
	someHash = sha256.Sum256([]byte("some tree"))
	someB64  = base64.StdEncoding.EncodeToString(someHash[:])
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Checkpoint
	}{
		{"empty tree", "example.com/log\n0\n" + emptyB64 + "\n",
			Checkpoint{Origin: "example.com/log", Size: 0, Hash: EmptyRoot}},
		{"size 1", "example.com/log\n1\n" + someB64 + "\n",
			Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash}},
		{"max size", "o\n18446744073709551615\n" + someB64 + "\n",
			Checkpoint{Origin: "o", Size: 1<<64 - 1, Hash: someHash}},
		{"extensions", "example.com/log\n5\n" + someB64 + "\next one\n— ext two\n",
			Checkpoint{Origin: "example.com/log", Size: 5, Hash: someHash, Extensions: []string{"ext one", "— ext two"}}},
		{"unicode origin", "exämple.com/日志\n5\n" + someB64 + "\n",
			Checkpoint{Origin: "exämple.com/日志", Size: 5, Hash: someHash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse diff (-want +got):\n%s", diff)
			}
			if m := string(got.Marshal()); m != tt.body {
				t.Errorf("Marshal = %q, want %q", m, tt.body)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(someHash[:31])
	long := base64.StdEncoding.EncodeToString(append(someHash[:], 0))
	// The last base64 character of a 32-byte hash carries 2 padding bits;
	// flipping them gives a string that decodes to the same bytes leniently.
	nonCanon := someB64[:42] + string(flipLowBits(someB64[42])) + "="
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"no final newline", "example.com/log\n1\n" + someB64},
		{"two lines", "example.com/log\n1\n"},
		{"empty origin", "\n1\n" + someB64 + "\n"},
		{"origin with space", "example.com log\n1\n" + someB64 + "\n"},
		{"origin with nbsp", "example.com\u00a0log\n1\n" + someB64 + "\n"},
		{"origin with plus", "example.com+log\n1\n" + someB64 + "\n"},
		{"leading zero", "example.com/log\n01\n" + someB64 + "\n"},
		{"double zero", "example.com/log\n00\n" + emptyB64 + "\n"},
		{"plus sign", "example.com/log\n+1\n" + someB64 + "\n"},
		{"minus sign", "example.com/log\n-1\n" + someB64 + "\n"},
		{"empty size", "example.com/log\n\n" + someB64 + "\n"},
		{"hex size", "example.com/log\n0x1\n" + someB64 + "\n"},
		{"size with space", "example.com/log\n 1\n" + someB64 + "\n"},
		{"size overflow", "example.com/log\n18446744073709551616\n" + someB64 + "\n"},
		{"hash 31 bytes", "example.com/log\n1\n" + short + "\n"},
		{"hash 33 bytes", "example.com/log\n1\n" + long + "\n"},
		{"hash not base64", "example.com/log\n1\n" + strings.Repeat("!", 44) + "\n"},
		{"hash unpadded", "example.com/log\n1\n" + strings.TrimRight(someB64, "=") + "\n"},
		{"hash url base64", "example.com/log\n1\n" + base64.URLEncoding.EncodeToString(urlHash()) + "\n"},
		{"hash non-canonical padding bits", "example.com/log\n1\n" + nonCanon + "\n"},
		{"hash with trailing space", "example.com/log\n1\n" + someB64 + " \n"},
		{"size 0 with other root", "example.com/log\n0\n" + someB64 + "\n"},
		{"empty extension line", "example.com/log\n1\n" + someB64 + "\n\n"},
		{"empty line between extensions", "example.com/log\n1\n" + someB64 + "\na\n\nb\n"},
		{"CR", "example.com/log\r\n1\n" + someB64 + "\n"},
		{"CRLF everywhere", "example.com/log\r\n1\r\n" + someB64 + "\r\n"},
		{"tab", "example.com/log\n1\n" + someB64 + "\next\tension\n"},
		{"NUL", "example.com/log\n1\n" + someB64 + "\nx\x00\n"},
		{"invalid UTF-8", "example.com/\xff\n1\n" + someB64 + "\n"},
		{"oversize", "example.com/log\n1\n" + someB64 + "\n" + strings.Repeat("x", MaxNoteSize) + "\n"},
		{"leading newline", "\nexample.com/log\n1\n" + someB64 + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) = %+v, %v; want ErrMalformed", truncate(tt.body), got, err)
			}
		})
	}
}

func flipLowBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

// urlHash is a hash whose URL-safe base64 differs from the standard one.
func urlHash() []byte {
	for i := 0; ; i++ {
		h := sha256.Sum256([]byte{byte(i)})
		if s := base64.URLEncoding.EncodeToString(h[:]); strings.ContainsAny(s, "-_") {
			return h[:]
		}
	}
}

func TestLeafHashAndEmptyRoot(t *testing.T) {
	// RFC 6962 test vectors from transparency-dev/merkle's rfc6962 tests.
	if got, want := base64.StdEncoding.EncodeToString(EmptyRoot[:]), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; got != want {
		t.Errorf("EmptyRoot = %s, want %s", got, want)
	}
	h := LeafHash(nil)
	if got, want := base64.StdEncoding.EncodeToString(h[:]), "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="; got != want {
		t.Errorf("LeafHash(empty) = %s, want %s", got, want)
	}
	h = LeafHash([]byte("L123456"))
	if got, want := base64.StdEncoding.EncodeToString(h[:]), base64.StdEncoding.EncodeToString(sha256Sum(append([]byte{0}, "L123456"...))); got != want {
		t.Errorf("LeafHash(L123456) = %s, want %s", got, want)
	}
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
