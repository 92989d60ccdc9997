package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/trillian/storage/mysql"
)

// LoadMySQLSchema runs script, an SQL schema such as Trillian's
// storage/mysql/schema/storage.sql, on the MySQL database named by dsn:
// "--" and "#" comment lines are dropped and the rest is split into statements at
// ";". Trillian does not ship its schema inside its Go packages, so the
// operator (or a test) supplies the file from the Trillian module.
func LoadMySQLSchema(ctx context.Context, dsn string, script []byte) error {
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		return fmt.Errorf("loading Trillian schema: %w", err)
	}
	defer db.Close()
	var b strings.Builder
	for line := range strings.Lines(string(script)) {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "--") || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(line)
	}
	for stmt := range strings.SplitSeq(b.String(), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("loading Trillian schema: %w", err)
		}
	}
	return nil
}

// MySQLTrees returns how many trees Trillian's tables in the MySQL database
// named by dsn hold (deleted ones included), without changing anything: 0
// for a database that Trillian's schema was just loaded into. It returns
// an error wrapping ErrNoTrillianSchema when the schema is missing.
func MySQLTrees(ctx context.Context, dsn string) (int, error) {
	db, n, err := openMySQL(ctx, dsn)
	if err != nil {
		return 0, err
	}
	db.Close()
	return n, nil
}
