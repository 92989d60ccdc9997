// Package testproc holds helpers for tests that build and run this module's
// binaries as real processes: Build compiles commands into a temporary
// directory (from TestMain or a test), and Start runs one and waits until
// it is ready, collecting the "key: value" lines it prints on stdout at
// startup (origin, vkey, write token, ... up to "listening: <url>"). Main
// is a TestMain that builds the binaries once for a package's tests.
//
// It is test code: only _test.go files may import it.
package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// Build builds the main packages pkgs (as "go build" names them, relative
// to the current directory) into a new temporary directory, each binary
// named after its package's directory. cleanup removes the directory; on
// error there is nothing to clean up and the error carries go build's
// output.
func Build(pkgs ...string) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "testproc")
	if err != nil {
		return "", func() {}, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	for _, pkg := range pkgs {
		if _, err := BuildInto(dir, pkg); err != nil {
			cleanup()
			return "", func() {}, err
		}
	}
	return dir, cleanup, nil
}

// Main is a TestMain: it builds pkgs with Build, calls setup with the
// directory that holds them (to note the binaries' paths, or build more
// with BuildInto), runs the tests, removes the directory and exits with the
// tests' code. If a build fails, Main prints the error and exits 1.
func Main(m *testing.M, setup func(dir string), pkgs ...string) {
	dir, cleanup, err := Build(pkgs...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	setup(dir)
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// BuildInto builds the main package pkg into dir and returns the binary's
// path: dir joined with the name of the package's directory.
func BuildInto(dir, pkg string) (bin string, err error) {
	name, err := binaryName(pkg)
	if err != nil {
		return "", err
	}
	bin = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// binaryName is the name go build gives pkg's binary: the last element of
// its directory for a relative or absolute path, of its import path
// otherwise.
func binaryName(pkg string) (string, error) {
	if pkg == "." || pkg == ".." || strings.HasPrefix(pkg, "./") || strings.HasPrefix(pkg, "../") || filepath.IsAbs(pkg) {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			return "", err
		}
		return filepath.Base(abs), nil
	}
	return path.Base(pkg), nil
}
