//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock (flock) on the database file,
// held until the returned file is closed. SQLite's own locks are fcntl
// locks, which flock does not disturb; this one only keeps a second Storage,
// in this process or another, from opening the same file.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, fmt.Errorf("sqlite storage: locking %s: %w", path, err)
	}
	return f, nil
}

// dirWritable reports why dir is not writable by this process (access(2)
// with W_OK, which also sees read-only mounts and immutable directories,
// even for root), or nil.
func dirWritable(dir string) error {
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return &os.PathError{Op: "access", Path: dir, Err: err}
	}
	return nil
}
