package testdb

import (
	"database/sql"
	"os"
	"testing"

	_ "modernc.org/sqlite" // to read the damaged file's schema
)

// DamageSQLiteIndexes makes the root pages of the indexes of table in the
// closed SQLite file at path invalid b-tree pages, as a damaged disk would,
// and returns their page numbers; the table's own rows stay readable.
// SQLite's quick_check finds this damage; without it, the first statement
// that uses one of the indexes does.
func DamageSQLiteIndexes(t testing.TB, path, table string) []int64 {
	t.Helper()
	return damageRoots(t, path, "SELECT rootpage FROM sqlite_schema WHERE tbl_name = ? AND type = 'index'", table)
}

func damageRoots(t testing.TB, path, query, table string) []int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var pageSize int64
	var pages []int64
	err = db.QueryRow("PRAGMA page_size").Scan(&pageSize)
	if err == nil {
		var rows *sql.Rows
		if rows, err = db.Query(query, table); err == nil {
			for rows.Next() {
				var p int64
				if err = rows.Scan(&p); err != nil {
					break
				}
				pages = append(pages, p)
			}
			if err == nil {
				err = rows.Err()
			}
			rows.Close()
		}
	}
	db.Close()
	if err != nil || len(pages) == 0 {
		t.Fatalf("finding the pages of table %s in %s: %v (%d pages)", table, path, err, len(pages))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range pages {
		if _, err := f.WriteAt([]byte{0xff}, (p-1)*pageSize); err != nil { // 0xff is no b-tree page type
			t.Fatal(err)
		}
	}
	return pages
}
