//go:build !unix

package sqlite

import "os"

// lockFile does nothing where flock is not available: there, keeping to one
// Storage per file is up to the caller.
func lockFile(path string) (*os.File, error) { return nil, nil }

// dirWritable cannot tell here; SQLite's own error stands.
func dirWritable(dir string) error { return nil }
