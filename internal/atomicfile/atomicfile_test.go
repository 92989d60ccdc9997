package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// names lists the directory's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range es {
		s = append(s, e.Name())
	}
	return s
}

// TestWriteFile creates a file, replaces it, sets the permissions asked for
// and leaves no temporary file behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, tc := range []struct {
		data []byte
		perm os.FileMode
	}{
		{[]byte("first\n"), 0o644},
		{[]byte("second, longer content\n"), 0o600},
		{nil, 0o640},
	} {
		if err := WriteFile(path, tc.data, tc.perm); err != nil {
			t.Fatalf("WriteFile(%q): %v", tc.data, err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != string(tc.data) {
			t.Errorf("content %q, %v; want %q", b, err, tc.data)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != tc.perm {
			t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, tc.perm)
		}
		if n := names(t, dir); len(n) != 1 || n[0] != "state" {
			t.Errorf("directory holds %q, want only state", n)
		}
	}
}

// TestWriteFileErrors: a missing directory is an error; a rename that fails
// (the path is a non-empty directory) leaves the path as it was and removes
// the temporary file.
func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing directory: no error")
	}
	target := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(target, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("x"), 0o644); err == nil {
		t.Error("WriteFile over a non-empty directory: no error")
	}
	if fi, err := os.Stat(filepath.Join(target, "inside")); err != nil || !fi.IsDir() {
		t.Errorf("the directory changed: %v, %v", fi, err)
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "target" {
		t.Errorf("directory holds %q, want only target", n)
	}
}
