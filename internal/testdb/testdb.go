// Package testdb gives tests a fresh, empty MySQL/MariaDB database on the
// server named by the EVIDENT_MYSQL_DSN environment variable
// (scripts/test.sh starts MariaDB and sets it). Without the variable the
// test is skipped, visibly, with the reason. DamageSQLite damages an
// SQLite file the way a bad disk would, for tests of what notices.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// EnvDSN is the environment variable that names the MariaDB server for tests,
// as a go-sql-driver/mysql DSN, for example "root@unix(/tmp/mysqld.sock)/".
const EnvDSN = "EVIDENT_MYSQL_DSN"

// EnvRequire, when set (scripts/test.sh sets it), turns a missing EnvDSN into
// a test failure instead of a skip, so that CI cannot pass without MySQL.
const EnvRequire = "EVIDENT_REQUIRE_MYSQL"

// MySQL creates a new empty database on the test server and returns a DSN
// for it. The database is dropped when the test ends. It skips the test when
// EnvDSN is not set.
func MySQL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not: the MySQL tests must run here", EnvRequire, EnvDSN)
		}
		t.Skipf("SKIP: %s is not set; run scripts/test.sh to start MariaDB for the MySQL tests", EnvDSN)
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvDSN, err)
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("opening MariaDB: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := "evident_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database on %s: %v", EnvDSN, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE "+name); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.ParseTime = true
	return cfg.FormatDSN()
}

// TrillianSchema returns Trillian's MySQL schema script
// (storage/mysql/schema/storage.sql of the Trillian module go.mod pins),
// for backend.LoadMySQLSchema.
func TrillianSchema(t testing.TB) []byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
	if err != nil {
		t.Fatalf("finding the Trillian module: %v", err)
	}
	script, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "storage", "mysql", "schema", "storage.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return script
}
