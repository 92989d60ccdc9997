package witness

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evidentlog/evident/checkpoint"
)

func TestParseLogs(t *testing.T) {
	_, v1, _ := checkpoint.GenerateKey("example.com/one")
	_, v2, _ := checkpoint.GenerateKey("example.com/two")
	_, v1b, _ := checkpoint.GenerateKey("example.com/one")
	_, wkey, _ := checkpoint.GenerateCosignerKey("example.com/witness")
	text := "# logs I follow\n\nlog " + v1 + "\n  log\t" + v2 + " https://two.example.com/  \nlog " + v1b + "\n"
	l, err := ParseLogs([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"example.com/one", "example.com/two"}, l.Origins()); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
	if n := len(l.Verifiers("example.com/one")); n != 2 {
		t.Errorf("example.com/one has %d keys, want 2", n)
	}
	if l.Verifiers("example.com/three") != nil {
		t.Error("unknown origin has keys")
	}
	if got := l.List()[1].URL; got != "https://two.example.com/" {
		t.Errorf("URL %q", got)
	}
	if empty, err := ParseLogs(nil); err != nil || len(empty.List()) != 0 {
		t.Errorf("empty file: %v, %v", empty, err)
	}

	bad := []struct{ text, want string }{
		{"witness w " + v1 + "\n", "line 1: unknown keyword"},
		{"\nlog\n", "line 2: want"},
		{"log " + v1 + " https://x/ extra\n", "line 1: want"},
		{"log not-a-key\n", "line 1:"},
		{"log " + wkey + "\n", "line 1:"},
		{"log " + v1 + "\n#\nlog " + v1 + "\n", "line 3: key already listed on line 1"},
		{"log " + v1 + " ftp://x/\n", "line 1: \"ftp://x/\" is not an http(s) URL"},
		{"log " + v1 + " \xff\n", "not valid UTF-8"},
	}
	for _, tt := range bad {
		_, err := ParseLogs([]byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseLogs(%.50q) = %v, want an error containing %q", tt.text, err, tt.want)
		}
	}
}

func FuzzParseLogs(f *testing.F) {
	_, v1, _ := checkpoint.GenerateKey("example.com/one")
	f.Add([]byte("log " + v1 + " https://one.example.com/\n# c\n"))
	f.Add([]byte("log " + v1 + "\nlog " + v1 + "\n"))
	f.Add([]byte("group g 1 a\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		l, err := ParseLogs(text)
		if err != nil {
			return
		}
		for _, lg := range l.List() {
			if lg.Verifier == nil || lg.Verifier.Name() != lg.Origin || len(l.Verifiers(lg.Origin)) == 0 {
				t.Fatalf("log %+v is inconsistent", lg)
			}
		}
	})
}
