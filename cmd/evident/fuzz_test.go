package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadReceipts feeds arbitrary receipts files to the resume path: it
// must never panic, and what it accepts must be well-formed records.
func FuzzLoadReceipts(f *testing.F) {
	f.Add([]byte(`{"line":1,"index":0,"leaf_hash":"ab","receipt":"x"}` + "\n"))
	f.Add([]byte(`{"line":3,"index":9,"leaf_hash":"0000000000000000000000000000000000000000000000000000000000000000","receipt":"r"}` + "\n" + `{"line":3`))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"line":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "r")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		done, err := loadReceipts(p)
		if err != nil {
			return
		}
		for line, h := range done {
			if line < 1 || len(h) != 64 {
				t.Errorf("accepted line %d hash %q", line, h)
			}
		}
		// An accepted file ends with a complete record (or is empty).
		after, _ := os.ReadFile(p)
		if len(after) > 0 && after[len(after)-1] != '\n' {
			t.Errorf("file not truncated to its last complete record: %q", after)
		}
	})
}
