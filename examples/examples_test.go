// Package examples holds runnable examples of Evident's typed events
// (approval-flow.sh, ai-decisions.sh). This test runs each, so that they
// cannot rot: each must end with an exported evidence bundle that
// verifies.
package examples

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExamples(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"approval-flow.sh", "OK: 4 events (1 private data verified, 0 erased)"},
		{"ai-decisions.sh", "OK: 3 events (2 private data verified, 1 erased), latest checkpoint size 5"},
	} {
		t.Run(tc.script, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.CommandContext(t.Context(), "bash", tc.script)
			cmd.Env = append(cmd.Environ(), "EXAMPLE_DIR="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.script, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s does not end with %q:\n%s", tc.script, tc.want, out)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "*.evidence.json")); len(files) != 1 {
				t.Errorf("%s wrote %d bundles, want 1", tc.script, len(files))
			}
		})
	}
}
