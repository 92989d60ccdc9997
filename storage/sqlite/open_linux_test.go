package sqlite

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenUnwritable checks that a path this process cannot write gives a
// clear error at Open and changes nothing. The first cases fail even for
// root (CI runs as root, for whom file modes do not apply): a directory of
// sysfs or procfs, and a directory or file made immutable with chattr +i.
// The chmod cases run only when not root.
func TestOpenUnwritable(t *testing.T) {
	good, err := os.ReadFile(makeStore(t))
	if err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	tests := []struct {
		name string
		// setup returns the path to open and the file's content before
		// Open (nil when there is no file).
		setup     func(t *testing.T, dir string) (string, []byte)
		wantPerm  bool   // the error is fs.ErrPermission
		wantInMsg string // the error contains this
	}{
		{name: "new file in sysfs", setup: func(*testing.T, string) (string, []byte) {
			return "/sys/evident-trillian.db", nil
		}, wantInMsg: "creating /sys/evident-trillian.db"},
		{name: "existing file in procfs", setup: func(*testing.T, string) (string, []byte) {
			return "/proc/version", nil
		}},
		{name: "immutable directory", setup: func(t *testing.T, dir string) (string, []byte) {
			p := writeFile(t, dir, good)
			chattr(t, "+i", dir)
			return p, good
		}, wantInMsg: "must be writable, SQLite creates trillian.db-wal and trillian.db-shm there"},
		{name: "immutable file", setup: func(t *testing.T, dir string) (string, []byte) {
			p := writeFile(t, dir, good)
			chattr(t, "+i", p)
			return p, good
		}, wantPerm: true},
		{name: "read-only directory (chmod)", setup: func(t *testing.T, dir string) (string, []byte) {
			p := writeFile(t, dir, good)
			chmod(t, dir, 0o500, root)
			return p, good
		}, wantInMsg: "must be writable, SQLite creates trillian.db-wal and trillian.db-shm there"},
		{name: "read-only directory, no file (chmod)", setup: func(t *testing.T, dir string) (string, []byte) {
			chmod(t, dir, 0o500, root)
			return filepath.Join(dir, "trillian.db"), nil
		}, wantPerm: true},
		{name: "read-only file (chmod)", setup: func(t *testing.T, dir string) (string, []byte) {
			p := writeFile(t, dir, good)
			chmod(t, p, 0o400, root)
			return p, good
		}, wantPerm: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, content := tc.setup(t, t.TempDir())
			s, err := Open(t.Context(), path, Config{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded, want an error", path)
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Open error %q does not name the path", err)
			}
			if tc.wantPerm && !errors.Is(err, fs.ErrPermission) {
				t.Errorf("Open error %q is not a permission error", err)
			}
			if tc.wantInMsg != "" && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("Open error %q does not contain %q", err, tc.wantInMsg)
			}
			if content != nil {
				if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
					t.Errorf("Open changed the file (%v)", err)
				}
				for _, suffix := range []string{"-wal", "-shm", "-journal"} {
					if _, err := os.Stat(path + suffix); err == nil {
						t.Errorf("Open left %s%s behind", path, suffix)
					}
				}
			} else if !strings.HasPrefix(path, "/proc/") {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open created %s (%v)", path, err)
				}
			}
		})
	}
}

func writeFile(t *testing.T, dir string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, "trillian.db")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// chattr sets or clears a file attribute, and clears it again at the end of
// the test so that the file can be removed. It skips the test, visibly,
// when the attribute cannot be set (not root, or a file system without
// attributes).
func chattr(t *testing.T, attr, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", attr, path).CombinedOutput(); err != nil {
		t.Skipf("SKIP: chattr %s %s: %v %s (needs root and a file system with attributes)", attr, path, err, out)
	}
	t.Cleanup(func() {
		undo := strings.Replace(attr, "+", "-", 1)
		if out, err := exec.Command("chattr", undo, path).CombinedOutput(); err != nil {
			t.Errorf("chattr %s %s: %v %s", undo, path, err, out)
		}
	})
}

// chmod sets path's mode for the test and restores it at the end. File modes
// do not bind root, so as root it skips the test, visibly.
func chmod(t *testing.T, path string, mode fs.FileMode, root bool) {
	t.Helper()
	if root {
		t.Skip("SKIP: file modes do not apply to root; the chattr cases cover this as root")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, fi.Mode().Perm()) })
}
