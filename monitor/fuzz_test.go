package monitor

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzAuditState feeds arbitrary state files to the audit's resume path.
func FuzzAuditState(f *testing.F) {
	f.Add([]byte(`{"origin":"o","verified":{"size":3,"hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}}`))
	f.Add([]byte(`{"origin":"o","progress":{"size":18446744073709551615,"hashes":[]}}`))
	f.Add([]byte(`{"origin":"other"}`))
	f.Add([]byte(`{"origin":"o","verified":{"size":1,"hashes":["AAA="]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "audit.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := LoadAuditState(dir, "o")
		if err != nil {
			return
		}
		for _, rs := range []*Range{st.Verified, st.Progress} {
			if rs == nil {
				continue
			}
			if r, err := rs.compact(); err == nil {
				rootOf(r) // must not panic
			}
		}
	})
}
