package storage

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// storedTokens returns the stored tokens' names by hash.
func storedTokens(t *testing.T, db *DB) map[TokenHash]string {
	t.Helper()
	list, err := db.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[TokenHash]string{}
	for _, tk := range list {
		got[tk.Hash] = tk.Name
	}
	return got
}

// TestReplaceTokens rotates the token stored under one name, as servers
// sharing one state database do on start: the same token again changes
// nothing, a new one revokes the old one for good, and other names' tokens
// stay.
func TestReplaceTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if err := db.AddToken(ctx, "ci", "ci-token"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ReplaceTokens(ctx, "write-token", ""); err == nil {
			t.Error("ReplaceTokens with an empty token succeeded")
		}
		steps := []struct {
			token       string
			wantRevoked int
		}{
			{"old", 0}, // the first start
			{"old", 0}, // a second server, or a restart, with the same file
			{"new", 1}, // the rotation
			{"new", 0}, // the other servers, given the new file
		}
		for _, s := range steps {
			n, err := db.ReplaceTokens(ctx, "write-token", s.token)
			if err != nil || n != s.wantRevoked {
				t.Fatalf("ReplaceTokens(%s) = %d, %v; want %d revoked", s.token, n, err, s.wantRevoked)
			}
		}
		want := map[TokenHash]string{HashToken("ci-token"): "ci", HashToken("new"): "write-token"}
		if diff := cmp.Diff(want, storedTokens(t, db)); diff != "" {
			t.Errorf("after rotation, Tokens (-want +got):\n%s", diff)
		}

		// A server still holding the old file cannot bring it back (and so
		// cannot revoke the new one); nothing changes.
		if n, err := db.ReplaceTokens(ctx, "write-token", "old"); !errors.Is(err, ErrTokenRevoked) || n != 0 {
			t.Errorf("ReplaceTokens(old) after rotation = %d, %v; want ErrTokenRevoked", n, err)
		}
		if diff := cmp.Diff(want, storedTokens(t, db)); diff != "" {
			t.Errorf("after a refused stale token, Tokens (-want +got):\n%s", diff)
		}

		// Several tokens under the name (as AddToken on every start used to
		// leave) are all revoked by one replacement.
		for _, tok := range []string{"a", "b"} {
			if err := db.AddToken(ctx, "write-token", tok); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := db.ReplaceTokens(ctx, "write-token", "c"); err != nil || n != 3 {
			t.Errorf("ReplaceTokens(c) over new, a, b = %d, %v; want 3 revoked", n, err)
		}
		want = map[TokenHash]string{HashToken("ci-token"): "ci", HashToken("c"): "write-token"}
		if diff := cmp.Diff(want, storedTokens(t, db)); diff != "" {
			t.Errorf("after the second rotation, Tokens (-want +got):\n%s", diff)
		}
	})
}

// TestReplaceTokensConcurrently starts several servers' worth of
// ReplaceTokens with one token on a new database at once, as a cluster's
// personalities may on their first start: all succeed, and one token is
// stored.
func TestReplaceTokensConcurrently(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		errs := make(chan error, 8)
		for range cap(errs) {
			go func() {
				_, err := db.ReplaceTokens(t.Context(), "write-token", "shared")
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Errorf("concurrent ReplaceTokens with one token: %v", err)
			}
		}
		want := map[TokenHash]string{HashToken("shared"): "write-token"}
		if diff := cmp.Diff(want, storedTokens(t, db)); diff != "" {
			t.Errorf("Tokens (-want +got):\n%s", diff)
		}
	})
}

func TestTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if err := db.AddToken(ctx, "first", ""); err == nil {
			t.Error("AddToken with an empty token succeeded")
		}
		for _, tok := range []string{"secret-1", "secret-2", "secret-1"} {
			if err := db.AddToken(ctx, "n-"+tok, tok); err != nil {
				t.Fatalf("AddToken(%s): %v", tok, err)
			}
		}
		list, err := db.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[TokenHash]string{}
		for _, tk := range list {
			got[tk.Hash] = tk.Name
		}
		want := map[TokenHash]string{HashToken("secret-1"): "n-secret-1", HashToken("secret-2"): "n-secret-2"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Tokens (-want +got):\n%s", diff)
		}
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT token_hash FROM write_tokens WHERE name = 'n-secret-2'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if string(raw) == "secret-2" {
			t.Error("the token itself is stored")
		}
		if err := db.DeleteToken(ctx, "secret-1"); err != nil {
			t.Fatal(err)
		}
		list, err = db.Tokens(ctx)
		if err != nil || len(list) != 1 || list[0].Hash != HashToken("secret-2") {
			t.Errorf("after DeleteToken: Tokens = %v, %v", list, err)
		}
	})
}
