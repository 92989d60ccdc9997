package log

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkAddResponse fails unless appendAddResponse writes what json.Marshal
// writes for r.
func checkAddResponse(t *testing.T, r *addResponse) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendAddResponse(nil, r); !bytes.Equal(got, want) {
		t.Errorf("appendAddResponse(%+v)\n got %s\nwant %s", r, got, want)
	}
}

func TestAppendAddResponse(t *testing.T) {
	index, dup := uint64(18446744073709551615), true
	zero, no := uint64(0), false
	receipt := "c2sp.org/tlog-proof@v1\nindex 7\nAAAA\n\nexample.com/log\n8\nq0Vz\n\n— example.com/log Az3grl<>&\"\\\t\r\b\f\x01\x7f\u2028\u2029\xff\xfe é\n"
	for _, r := range []*addResponse{
		{LeafHash: make([]byte, 32)},
		{LeafHash: []byte{0xfb, 0xff}, Tenant: "acme"},
		{Index: &index, LeafHash: bytes.Repeat([]byte{0xab}, 32), Duplicate: &dup, Receipt: receipt, Tenant: "default"},
		{Index: &zero, LeafHash: []byte{}, Duplicate: &no},
		{},
	} {
		checkAddResponse(t, r)
	}
}

func FuzzAppendAddResponse(f *testing.F) {
	f.Add(uint64(1), []byte{1, 2, 3}, true, "c2sp.org/tlog-proof@v1\n— x <&>", "tenant")
	f.Add(uint64(0), []byte(nil), false, "\xff\u2028\x00", "")
	f.Fuzz(func(t *testing.T, index uint64, hash []byte, dup bool, receipt, tenant string) {
		checkAddResponse(t, &addResponse{Index: &index, LeafHash: hash, Duplicate: &dup, Receipt: receipt, Tenant: tenant})
		checkAddResponse(t, &addResponse{LeafHash: hash, Receipt: receipt, Tenant: tenant})
	})
}
