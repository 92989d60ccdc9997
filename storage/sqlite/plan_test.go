package sqlite

import (
	"strings"
	"testing"
)

// TestQueryPlans checks that the hot queries use the indexes they were
// written for, not a scan of a whole table.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, Config{})
	h := make([]byte, 32)
	tests := []struct {
		query string
		args  []any
		want  string
	}{
		{selectLeavesByRangeSQL, []any{1, 0, 10}, "leaf_data_sequence"},
		{selectLeavesByMerkleSameSQL, []any{1, h, 1}, "INTEGER PRIMARY KEY"},
		{selectLeavesByMerkleOtherSQL, []any{1, h}, "leaf_data_merkle"},
		{selectIdentitySQL, []any{1, h}, "PRIMARY KEY"},
		{selectIdentitiesSQL(2), []any{1, h, h}, "PRIMARY KEY"},
		{selectLeafByRowidSQL, []any{1}, "INTEGER PRIMARY KEY"},
		{selectPendingSQL, nil, "INTEGER PRIMARY KEY"},
		{selectQueuedSQL, []any{1, 0, 10}, "leaf_data_queue"},
		{sequenceLeafSQL, []any{1, 0, 1, 1}, "INTEGER PRIMARY KEY"},
		{selectLatestRootSQL, []any{1}, "PRIMARY KEY"},
		{selectSubtreeSQL, []any{1, h}, "sqlite_autoindex_subtrees"},
		{selectEndSQL, []any{1}, "leaf_data_sequence"},
	}
	for _, tc := range tests {
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, tc.want) || strings.Contains(got, "SCAN") {
			t.Errorf("plan of %q is %q, want a search using %s", tc.query, got, tc.want)
		}
	}
}
