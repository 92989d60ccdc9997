package checkpoint

import (
	"errors"
	"fmt"
	"testing"
)

func TestQuorumError(t *testing.T) {
	tests := []struct {
		err  *QuorumError
		want string
	}{
		{&QuorumError{}, "witness quorum not satisfied"},
		{&QuorumError{Missing: []string{"A", "B"}}, "witness quorum not satisfied: missing cosignatures from A, B"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		wrapped := fmt.Errorf("checkpoint 5: %w", tt.err)
		if !errors.Is(wrapped, ErrQuorum) || errors.Is(wrapped, ErrSignature) {
			t.Errorf("errors.Is(%v, ErrQuorum) = false", wrapped)
		}
		var qe *QuorumError
		if !errors.As(wrapped, &qe) || qe != tt.err {
			t.Errorf("errors.As did not find the QuorumError")
		}
	}
}
