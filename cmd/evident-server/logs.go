package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/evidentlog/evident/checkpoint"
	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
	"github.com/evidentlog/evident/witness"
)

// Several logs on one server. The default log lives in the data directory
// as before; each named log in a directory of its own under logs/, with
// the same layout (log.key, log.vkey, and in SQLite mode state.db and
// trillian.db), so that every per-origin and per-tree table and setting
// works unchanged, plus its settings: witness-policy (a copy of the policy
// it was given), private (present for a private log) and, in MySQL mode,
// mysql-dsn (0600): the DSN of the log's own MySQL database, which holds
// its state tables and its Trillian tree as the default log's database
// holds the default log's. It is served at /<name>/.
const (
	logsDir        = "logs"           // the named logs, in the data directory
	logPolicyFile  = "witness-policy" // a named log's witness policy, if any
	logPrivateFile = "private"        // present: the named log is private
	logDSNFile     = "mysql-dsn"      // MySQL mode: the named log's database (0600)
)

const logUsage = `Usage: evident-server log add [flags] [--origin O] [--witness_policy_file F] [--private] NAME
       evident-server log add --mysql_dsn DEFAULT_DSN --log_mysql_dsn NEW_DSN [flags] NAME   (MySQL mode)
       evident-server log list [flags]

Several logs on one server (docs/deployment.md, "Several logs on one server").
The default log is the data directory's, served at / as always. "log add"
creates the named log NAME in DATA_DIR/logs/NAME (0700): its own Ed25519
note key (log.key 0600, log.vkey), its own state database and Trillian tree,
a copy of its witness policy, and whether it is private. The server serves
it at /NAME/ (/NAME/checkpoint, /NAME/v1/add-entry, /NAME/tile/...) from its
next start. Tenants and their keys stay in the default log's state database;
a tenant may use a named log once granted it:

       evident-server tenant grant TENANT NAME

(the default tenant, the operator's, may use every log).

In MySQL mode (a server started with --mysql_dsn) each named log keeps its
state tables and Trillian tree in a MySQL/MariaDB database of its own,
which the operator creates and loads Trillian's schema into first, as for
the default log (docs/deployment.md). Give "log add" the default log's DSN
as the server has it (--mysql_dsn, --mysql_dsn_file or $` + dsnEnv + `)
and the new log's (--log_mysql_dsn, or --log_mysql_dsn_file to keep a
password out of the process list). The new log's DSN is stored in
DATA_DIR/logs/NAME/mysql-dsn (0600) and never printed; its database must be
empty but for Trillian's schema, and not the default log's nor another
log's. A server runs all its logs in one mode: a log added in SQLite mode
is refused by a server on MySQL, and the reverse. Named logs need an
in-process Trillian: --trillian_addr is refused.

A NAME has 1 to 64 lowercase letters, digits, '.', '_' and '-', starting
with a letter or digit, and is not reserved: the server's own first path
segments and a few more (` + "%s" + `), and names starting with "evident.".
"log add" needs the default log to exist (start the server once); it
records "log.create" in the operations record of the default log and of the
new log. "log list" shows every log: name, prefix, origin, private,
witnesses, store (sqlite, or mysql and its database, never the DSN) and
verifier key.

Exit codes: 0 done; 1 failed; 2 usage: a bad, reserved or existing NAME, a
bad policy file, no default log, a DSN missing or of a database that is
another log's or lacks Trillian's schema, a mode other than the default
log's, or --trillian_addr. A failed "log add" leaves nothing behind.

Flags:
`

// logCmd is a parsed log command.
type logCmd struct {
	verb       string // "add" or "list"
	name       string
	origin     string
	policyFile string
	private    bool
	dataDir    string
	// MySQL mode: the default log's DSN and the new log's (add). Never
	// printed or logged: they may hold a password.
	defaultDSN, logDSN string
}

// parseLogCmd parses the arguments after "evident-server log". It checks
// everything it can without the data directory.
func parseLogCmd(args []string, env string, stderr io.Writer) (*logCmd, error) {
	usage := fmt.Sprintf(logUsage, strings.Join(evlog.ReservedLogNames(), ", "))
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return nil, errors.New(`give a command: "log add NAME" or "log list"`)
	}
	c := &logCmd{verb: args[0]}
	fs := flag.NewFlagSet("evident-server log "+c.verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var mysqlFile, logDSNFile, trillianAddr string
	fs.StringVar(&c.dataDir, "data_dir", "evident-data", "the server's data `directory` (the default log's); named logs go in its logs/")
	fs.StringVar(&c.defaultDSN, "mysql_dsn", "", "MySQL mode: the default log's `dsn`, as the server's --mysql_dsn (it holds the tenants and the operations record); better in $"+dsnEnv+" or --mysql_dsn_file")
	fs.StringVar(&mysqlFile, "mysql_dsn_file", "", "MySQL mode: read the default log's DSN from this `file`")
	fs.StringVar(&trillianAddr, "trillian_addr", "", "refused: named logs need an in-process Trillian (SQLite or MySQL mode)")
	if c.verb == "add" {
		fs.StringVar(&c.logDSN, "log_mysql_dsn", "", "MySQL mode: the new log's own database `dsn` (created, with Trillian's schema loaded, by the operator); stored 0600 in logs/NAME/mysql-dsn")
		fs.StringVar(&logDSNFile, "log_mysql_dsn_file", "", "MySQL mode: read the new log's DSN from this `file` (one line), to keep a password out of the process list")
		fs.StringVar(&c.origin, "origin", "", "the new log's `origin` (its key name); default: host name, a random suffix and NAME")
		fs.StringVar(&c.policyFile, "witness_policy_file", "", "tlog-policy `file` of the new log's witnesses and quorum; copied into the log's directory (edit the copy and restart to change it)")
		fs.BoolVar(&c.private, "private", false, "make the new log private (like --private_log): reading entry contents needs a read or admin key of the entry's tenant")
	}
	switch c.verb {
	case "add", "list":
	case "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return nil, flag.ErrHelp
	default:
		fmt.Fprint(stderr, usage)
		return nil, fmt.Errorf("unknown command %q", "log "+truncateArg(c.verb))
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if trillianAddr != "" {
		return nil, errors.New("named logs need an in-process Trillian (SQLite or MySQL mode); with a remote Trillian (--trillian_addr) run one server per log (docs/deployment.md)")
	}
	o := options{mysqlDSN: c.defaultDSN}
	if err := mysqlDSN(&o, mysqlFile, env); err != nil {
		return nil, err
	}
	c.defaultDSN = o.mysqlDSN
	if logDSNFile != "" {
		if c.logDSN != "" {
			return nil, errors.New("give the new log's DSN once: --log_mysql_dsn or --log_mysql_dsn_file")
		}
		b, err := os.ReadFile(logDSNFile)
		if err != nil {
			return nil, fmt.Errorf("--log_mysql_dsn_file: %w", err)
		}
		if c.logDSN = strings.TrimSpace(string(b)); c.logDSN == "" || strings.Contains(c.logDSN, "\n") {
			return nil, fmt.Errorf("--log_mysql_dsn_file %s must hold the DSN on one line", logDSNFile)
		}
	}
	if c.dataDir == "" {
		return nil, errors.New("--data_dir must not be empty")
	}
	pos := fs.Args()
	switch {
	case c.verb == "list" && len(pos) != 0:
		return nil, fmt.Errorf("log list takes no arguments, got %d", len(pos))
	case c.verb == "add" && len(pos) != 1:
		return nil, fmt.Errorf("log add takes a NAME, got %d arguments", len(pos))
	case c.verb == "add":
		c.name = pos[0]
		if err := evlog.CheckLogName(c.name); err != nil {
			return nil, err
		}
	}
	if c.origin != "" {
		if _, _, err := checkpoint.GenerateKey(c.origin); err != nil {
			return nil, fmt.Errorf("--origin: %w", err)
		}
	}
	if c.defaultDSN != "" {
		if _, err := dsnDatabase(c.defaultDSN); err != nil {
			return nil, fmt.Errorf("the default log's DSN: %w", err)
		}
	}
	if c.verb == "add" {
		switch {
		case c.logDSN != "" && c.defaultDSN == "":
			return nil, fmt.Errorf("--log_mysql_dsn is for a server on MySQL: give the default log's DSN too (--mysql_dsn, --mysql_dsn_file or $%s), as the server has it", dsnEnv)
		case c.logDSN == "" && c.defaultDSN != "":
			return nil, errors.New("in MySQL mode a named log keeps its state and tree in a database of its own: give its DSN with --log_mysql_dsn or --log_mysql_dsn_file (create the database and load Trillian's schema into it first, docs/deployment.md)")
		case c.logDSN != "":
			db, err := dsnDatabase(c.logDSN)
			if err != nil {
				return nil, fmt.Errorf("the new log's DSN: %w", err)
			}
			if def, _ := dsnDatabase(c.defaultDSN); def == db {
				return nil, fmt.Errorf("the new log's DSN names %s, the default log's database: every log needs a database of its own", db)
			}
		}
	}
	return c, nil
}

// dsnDatabase returns the database a MySQL DSN names, with its server's
// address, as "database NAME on NET(ADDR)": what tells two logs'
// databases apart, and safe to print (no user, no password). Names are
// compared in lower case, so that a database is never taken for another
// on a server whose names ignore case.
func dsnDatabase(dsn string) (string, error) {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("not a MySQL DSN (user:password@tcp(host:port)/database): %w", err)
	}
	if cfg.DBName == "" {
		return "", errors.New("the DSN names no database (user:password@tcp(host:port)/database)")
	}
	return fmt.Sprintf("database %s on %s(%s)", strings.ToLower(cfg.DBName), cfg.Net, strings.ToLower(cfg.Addr)), nil
}

// usageError is an error of "log add" that exits 2: the command cannot be
// done as given, and nothing was created.
type usageError struct{ error }

// runLog is "evident-server log ...": it returns the process's exit code.
func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseLogCmd(args, os.Getenv(dsnEnv), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "evident-server:", err)
		return 2
	}
	switch c.verb {
	case "list":
		err = c.list(stdout)
	case "add":
		err = c.add(ctx, stdout, stderr)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "evident-server:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "evident-server:", err)
		return 1
	}
	return 0
}

// namedLogDir is a named log's directory.
type namedLogDir struct {
	name, dir string
	vkey      string
	private   bool
	policy    string // the policy file's path, "" for none
	dsn       string // MySQL mode: its database's DSN (never printed); "" in SQLite mode
}

// store says where the log keeps its state and tree, printably.
func (d namedLogDir) store() string {
	if d.dsn == "" {
		return "sqlite"
	}
	db, err := dsnDatabase(d.dsn)
	if err != nil {
		return "mysql (a bad DSN)"
	}
	return "mysql " + strings.ReplaceAll(strings.TrimPrefix(db, "database "), " on ", "@")
}

// origin is the log's origin: its verifier key's name.
func (d namedLogDir) origin() string { return vkeyOrigin(d.vkey) }

// vkeyOrigin is the origin of a log whose verifier key is vkey: the key's
// name.
func vkeyOrigin(vkey string) string {
	o, _, _ := strings.Cut(vkey, "+")
	return o
}

// listLogs returns the named logs of dataDir, by name. Entries of logs/
// that start with "." are a "log add" in progress or one that failed
// (left for the operator to inspect), and are skipped; any other entry
// must be a log.
func listLogs(dataDir string) ([]namedLogDir, error) {
	root := filepath.Join(dataDir, logsDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the named logs: %w", err)
	}
	var out []namedLogDir
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := evlog.CheckLogName(e.Name()); err != nil || !e.IsDir() {
			return nil, fmt.Errorf("%s holds %q, which is not a named log (%v): move it out", root, e.Name(), err)
		}
		d := namedLogDir{name: e.Name(), dir: filepath.Join(root, e.Name())}
		v, err := os.ReadFile(filepath.Join(d.dir, vkeyFile))
		if err != nil {
			return nil, fmt.Errorf("named log %s: %w", d.name, err)
		}
		d.vkey = strings.TrimSpace(string(v))
		if _, err := os.Stat(filepath.Join(d.dir, logPrivateFile)); err == nil {
			d.private = true
		}
		if p := filepath.Join(d.dir, logPolicyFile); fileExists(p) {
			d.policy = p
		}
		if b, err := os.ReadFile(filepath.Join(d.dir, logDSNFile)); err == nil {
			if d.dsn = strings.TrimSpace(string(b)); d.dsn == "" {
				return nil, fmt.Errorf("named log %s: %s is empty", d.name, filepath.Join(d.dir, logDSNFile))
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("named log %s: %w", d.name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (c *logCmd) list(stdout io.Writer) error {
	if !fileExists(filepath.Join(c.dataDir, vkeyFile)) {
		return fmt.Errorf("no log in %s (start the server once to create the default log)", c.dataDir)
	}
	logs, err := listLogs(c.dataDir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tPREFIX\tORIGIN\tPRIVATE\tWITNESSES\tSTORE\tVKEY")
	if v, err := os.ReadFile(filepath.Join(c.dataDir, vkeyFile)); err == nil {
		d := namedLogDir{vkey: strings.TrimSpace(string(v))}
		store := "sqlite"
		if !fileExists(filepath.Join(c.dataDir, stateDB)) {
			store = "mysql"
		}
		fmt.Fprintf(tw, "(default)\t/\t%s\t-\t-\t%s\t%s\n", d.origin(), store, d.vkey)
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, l := range logs {
		fmt.Fprintf(tw, "%s\t/%s/\t%s\t%s\t%s\t%s\t%s\n", l.name, l.name, l.origin(), yes(l.private), yes(l.policy != ""), l.store(), l.vkey)
	}
	return tw.Flush()
}

// add creates the named log in a hidden directory beside its final
// place, and renames it there once it is complete: a failure leaves no
// log behind.
func (c *logCmd) add(ctx context.Context, stdout, stderr io.Writer) error {
	root := filepath.Join(c.dataDir, logsDir)
	dir := filepath.Join(root, c.name)
	mysqlMode := c.defaultDSN != ""
	sqliteDefault := fileExists(filepath.Join(c.dataDir, stateDB))
	switch {
	case !fileExists(filepath.Join(c.dataDir, vkeyFile)):
		return usageError{fmt.Errorf("no default log's state database in %s: start the server once to create the default log, which holds the tenants and keys every log uses", c.dataDir)}
	case !mysqlMode && !sqliteDefault:
		return usageError{fmt.Errorf("the default log of %s runs on MySQL (it has no %s): give its DSN as the server has it with --mysql_dsn (or $%s, --mysql_dsn_file), and the new log's own database with --log_mysql_dsn", c.dataDir, stateDB, dsnEnv)}
	case mysqlMode && sqliteDefault:
		return usageError{fmt.Errorf("the default log of %s runs on SQLite (%s): a server runs all its logs in one mode, so a named log on MySQL is refused; drop --mysql_dsn and --log_mysql_dsn", c.dataDir, stateDB)}
	}
	if fileExists(dir) {
		return usageError{fmt.Errorf("log %s exists already (%s)", c.name, dir)}
	}
	logs, err := listLogs(c.dataDir)
	if err != nil {
		return usageError{err}
	}
	var newDB, defDB string // MySQL mode: the new log's database and the default log's, printably
	if mysqlMode {
		newDB, _ = dsnDatabase(c.logDSN) // checked by parseLogCmd
		defDB, _ = dsnDatabase(c.defaultDSN)
	}
	for _, l := range logs {
		switch {
		case l.dsn != "" && mysqlMode:
			if db, _ := dsnDatabase(l.dsn); db == defDB {
				return usageError{fmt.Errorf("--mysql_dsn names %s, log %s's database, not the default log's: give the default log's DSN as the server has it", defDB, l.name)}
			}
		}
		switch {
		case l.dsn == "" && mysqlMode:
			return usageError{fmt.Errorf("log %s runs on SQLite, and a server runs all its logs in one mode: a named log on MySQL is refused here", l.name)}
		case l.dsn != "" && !mysqlMode:
			return usageError{fmt.Errorf("log %s runs on MySQL (%s): give the default log's DSN with --mysql_dsn and the new log's with --log_mysql_dsn", l.name, filepath.Join(l.dir, logDSNFile))}
		case l.dsn != "":
			if db, err := dsnDatabase(l.dsn); err != nil || db == newDB {
				return usageError{fmt.Errorf("the new log's DSN names %s, log %s's database (or %s holds a bad DSN: %v): every log needs a database of its own", newDB, l.name, filepath.Join(l.dir, logDSNFile), err)}
			}
		}
	}
	if mysqlMode {
		// Before opening its state tables (which creates them): a default
		// log's database holds its tree.
		if n, err := backend.MySQLTrees(ctx, c.defaultDSN); err != nil || n == 0 {
			return usageError{fmt.Errorf("the %s of --mysql_dsn holds no log (%d Trillian trees, %v): give the default log's DSN as the server has it", defDB, n, err)}
		}
	}
	// The default log's state database: the operations record of the
	// creation, and (MySQL mode) the proof that the given DSN is the
	// default log's.
	adminDB, err := openAdminState(ctx, &options{dataDir: c.dataDir, mysqlDSN: c.defaultDSN})
	if err != nil {
		return usageError{fmt.Errorf("the default log's state database: %w", err)}
	}
	defer adminDB.Close()
	if mysqlMode {
		if err := checkDefaultMySQL(ctx, adminDB, c.dataDir); err != nil {
			return usageError{err}
		}
		// The new log's database: Trillian's schema, and nothing of a log.
		n, err := backend.MySQLTrees(ctx, c.logDSN)
		if errors.Is(err, backend.ErrNoTrillianSchema) {
			return usageError{fmt.Errorf("the new log's %s: %w", newDB, err)}
		}
		if err != nil {
			return usageError{fmt.Errorf("the new log's %s: %w", newDB, err)}
		}
		if n > 0 {
			return usageError{fmt.Errorf("the new log's %s holds %d Trillian trees: it is another log's (or was used before); give a new database with Trillian's schema loaded", newDB, n)}
		}
	}
	var policy []byte
	if c.policyFile != "" {
		if policy, err = os.ReadFile(c.policyFile); err != nil {
			return usageError{fmt.Errorf("--witness_policy_file: %w", err)}
		}
		p, err := checkpoint.ParsePolicy(policy)
		if err != nil {
			return usageError{fmt.Errorf("--witness_policy_file %s: %w", c.policyFile, err)}
		}
		if ls := p.Logs(); len(ls) > 0 {
			return usageError{fmt.Errorf("--witness_policy_file %s names logs: a new log's key is made by this command, so its policy cannot name it yet; give a policy without log lines", c.policyFile)}
		}
	}
	origin := c.origin
	if origin == "" {
		origin = defaultOrigin() + "/" + c.name
	}
	// Two logs under one origin would sign two trees under one name:
	// witnesses and verifiers must never see that.
	dv, err := os.ReadFile(filepath.Join(c.dataDir, vkeyFile))
	if err != nil {
		return err
	}
	taken := map[string]string{vkeyOrigin(strings.TrimSpace(string(dv))): "the default log"}
	for _, l := range logs {
		taken[l.origin()] = "log " + l.name
	}
	if by, ok := taken[origin]; ok {
		return usageError{fmt.Errorf("--origin %s is %s's: every log needs its own origin", origin, by)}
	}
	key := logKey{isNew: true}
	if key.skey, key.vkey, err = checkpoint.GenerateKey(origin); err != nil {
		return usageError{fmt.Errorf("generating the log key for origin %q: %w", origin, err)}
	}

	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	tmp, err := os.MkdirTemp(root, "."+c.name+".new-")
	if err != nil {
		return fmt.Errorf("creating the log's directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	treeID, err := createNamedLog(ctx, tmp, c.name, key, policy, c.private, c.logDSN)
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	if err != nil {
		return fmt.Errorf("creating log %s: %w", c.name, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("creating log %s: %w", c.name, err)
	}
	done = true
	syncDir(root)

	// The operator's record, beside the tenants and keys that may use it.
	if err := adminDB.RecordOp(ctx, "log.create", logCreateFields(c.name, key.vkey, policy, c.private)); err != nil {
		return fmt.Errorf("log %s is created, but recording it in the operations record failed: %w", c.name, err)
	}
	fmt.Fprintf(stdout, "log %s created in %s\nprefix: /%s/\norigin: %s\nvkey: %s\ntree: %d\n", c.name, dir, c.name, origin, key.vkey, treeID)
	if mysqlMode {
		fmt.Fprintf(stdout, "store: MySQL, %s (DSN in %s, 0600)\n", newDB, filepath.Join(dir, logDSNFile))
	}
	fmt.Fprintf(stderr, "restart the server to serve it; grant tenants with: evident-server tenant grant TENANT %s\n", c.name)
	return nil
}

func logCreateFields(name, vkey string, policy []byte, private bool) map[string]any {
	f := map[string]any{"log": name, "vkey": vkey, "private": private}
	if policy != nil {
		f["witness_policy_sha256"] = policyDigest(policy)
	}
	return f
}

// checkDefaultMySQL makes sure that state, opened with the DSN given as
// the default log's, is the state database of the default log of dataDir:
// it records a Trillian tree, and belongs to the log's key as a start
// checks it (stateOwnerMismatch), recording nothing.
func checkDefaultMySQL(ctx context.Context, state *storage.DB, dataDir string) error {
	if _, err := state.Setting(ctx, backend.TreeIDSetting); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("the database of --mysql_dsn records no log: give the default log's DSN as the server has it (start the server once to create the default log)")
	} else if err != nil {
		return fmt.Errorf("the default log's state database: %w", err)
	}
	v, err := os.ReadFile(filepath.Join(dataDir, vkeyFile))
	if err != nil {
		return err
	}
	vkey := strings.TrimSpace(string(v))
	if err := stateOwnerMismatch(ctx, state, vkeyOrigin(vkey), vkey, "the database of --mysql_dsn"); err != nil {
		return fmt.Errorf("%w; give the default log's DSN as the server has it", err)
	}
	return nil
}

// createNamedLog fills dir with a new log: its keys, settings, state
// database and Trillian tree (in dir, or in the MySQL database of dsn,
// which it records in dir). It returns the tree's ID.
func createNamedLog(ctx context.Context, dir, name string, key logKey, policy []byte, private bool, dsn string) (int64, error) {
	if err := key.write(dir); err != nil {
		return 0, err
	}
	if dsn != "" {
		if err := writeSecret(filepath.Join(dir, logDSNFile), dsn); err != nil {
			return 0, err
		}
	}
	if policy != nil {
		if err := os.WriteFile(filepath.Join(dir, logPolicyFile), policy, 0o644); err != nil {
			return 0, err
		}
	}
	if private {
		if err := os.WriteFile(filepath.Join(dir, logPrivateFile), []byte("this log is private: reading entry contents needs a key of the entry's tenant\n"), 0o644); err != nil {
			return 0, err
		}
	}
	bcfg := backend.Config{Logger: slog.New(slog.DiscardHandler)}
	var state *storage.DB
	var err error
	where := filepath.Join(dir, stateDB)
	if dsn != "" {
		where, _ = dsnDatabase(dsn)
		state, err = storage.OpenMySQL(ctx, dsn)
		bcfg.MySQLDSN = dsn
	} else {
		state, err = storage.OpenSQLite(ctx, where)
		bcfg.SQLitePath = filepath.Join(dir, treeDB)
	}
	if err != nil {
		return 0, err
	}
	defer state.Close()
	origin := vkeyOrigin(key.vkey)
	if err := checkStateOwner(ctx, state, origin, key.vkey, where); err != nil {
		return 0, usageError{err}
	}
	// A new log's state database records no tree and holds no checkpoint
	// (a MySQL one may be another log's under another address).
	if what, err := stateHoldsLog(ctx, state); err != nil {
		return 0, err
	} else if what != "" {
		return 0, usageError{fmt.Errorf("the state database (%s) %s: it is another log's; give a new database", where, what)}
	}
	bcfg.State = state
	be, err := backend.New(ctx, bcfg)
	if err != nil {
		return 0, err
	}
	treeID := be.TreeID
	if err := be.Close(); err != nil {
		return 0, err
	}
	// The new log's own operations record starts with its creation.
	if err := state.RecordOp(ctx, "log.create", logCreateFields(name, key.vkey, policy, private)); err != nil {
		return 0, err
	}
	return treeID, nil
}

// syncDir makes a rename in dir durable (best effort: not every file
// system syncs directories).
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// checkLogExists returns a usage error unless dataDir holds the named log
// name.
func checkLogExists(dataDir, name string) error {
	if !fileExists(filepath.Join(dataDir, logsDir, name, vkeyFile)) {
		return fmt.Errorf("no log %q in %s (evident-server log list shows the logs)", name, filepath.Join(dataDir, logsDir))
	}
	return nil
}

// grantsByTenant maps each tenant to the named logs it is granted.
func grantsByTenant(gs []storage.Grant) map[string][]string {
	out := map[string][]string{}
	for _, g := range gs {
		out[g.Tenant] = append(out[g.Tenant], g.Log)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// checkNamedLogsMode refuses a server whose named logs do not run in its
// mode: in SQLite mode each keeps its databases in its directory, in MySQL
// mode each has a database of its own (its DSN in mysql-dsn), not the
// default log's nor another's; a remote Trillian serves the default log
// alone, so it refuses named logs. It runs before anything is opened, and
// returns the named logs it checked.
func checkNamedLogsMode(o *options) ([]namedLogDir, error) {
	dirs, err := listLogs(o.dataDir)
	if err != nil || len(dirs) == 0 {
		return nil, err
	}
	if o.trillianAddr != "" {
		return nil, fmt.Errorf("%s holds named logs (%d), which need an in-process Trillian (SQLite or MySQL mode): start this server without --trillian_addr, or move the logs out", filepath.Join(o.dataDir, logsDir), len(dirs))
	}
	seen := map[string]string{}
	if o.mysqlDSN != "" {
		db, err := dsnDatabase(o.mysqlDSN)
		if err != nil {
			return nil, fmt.Errorf("--mysql_dsn: %w", err)
		}
		seen[db] = "the default log"
	}
	for _, d := range dirs {
		switch {
		case o.mysqlDSN != "" && d.dsn == "":
			return nil, fmt.Errorf("named log %s runs on SQLite (it was added without --log_mysql_dsn), but this server runs on MySQL: a server runs all its logs in one mode; start it without --mysql_dsn, or move %s out", d.name, d.dir)
		case o.mysqlDSN == "" && d.dsn != "":
			return nil, fmt.Errorf("named log %s runs on MySQL (%s), but this server runs on SQLite: start it with the default log's --mysql_dsn (or $%s, --mysql_dsn_file)", d.name, filepath.Join(d.dir, logDSNFile), dsnEnv)
		case d.dsn != "":
			db, err := dsnDatabase(d.dsn)
			if err != nil {
				return nil, fmt.Errorf("named log %s: %s: %w", d.name, filepath.Join(d.dir, logDSNFile), err)
			}
			if by, ok := seen[db]; ok {
				return nil, fmt.Errorf("named log %s: its %s is %s's too: every log needs a database of its own", d.name, db, by)
			}
			seen[db] = "log " + d.name
		}
	}
	return dirs, nil
}

// namedLog is a named log the server runs.
type namedLog struct {
	namedLogDir
	state *storage.DB
	be    *backend.Backend
	log   *evlog.Log
}

// close stops the log, then closes its Trillian and state database.
func (n *namedLog) close() {
	if n.log != nil {
		n.log.Close()
	}
	if n.be != nil {
		n.be.Close()
	}
	if n.state != nil {
		n.state.Close()
	}
}

// openNamedLogs starts the named logs dirs (checkNamedLogsMode's). Each
// reads its keys from auth, the default log's state database; base is the
// default log's Config, for the settings every log shares. On an error the logs started so far are closed.
func openNamedLogs(ctx context.Context, o *options, dirs []namedLogDir, auth *storage.DB, base evlog.Config, logger *slog.Logger) (_ []*namedLog, err error) {
	var out []*namedLog
	defer func() {
		if err != nil {
			for _, n := range out {
				n.close()
			}
		}
	}()
	for _, d := range dirs {
		n := &namedLog{namedLogDir: d}
		out = append(out, n)
		if err := n.open(ctx, o, auth, base, logger.With("log", d.name)); err != nil {
			return nil, fmt.Errorf("named log %s (%s): %w", d.name, d.dir, err)
		}
	}
	return out, nil
}

func (n *namedLog) open(ctx context.Context, o *options, auth *storage.DB, base evlog.Config, logger *slog.Logger) error {
	key, err := loadKey(n.dir, "")
	if err != nil {
		return err
	}
	if key.isNew {
		return fmt.Errorf("%s is missing: restore it from a backup (a server never makes a named log's key; evident-server log add does)", keyFile)
	}
	signer, err := checkpoint.NewSigner(key.skey)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	lo := *o // the shared flags, with this log's policy
	lo.witnessPolicyFile = n.policy
	cfg := base
	var pool *witness.Pool
	if n.policy != "" {
		if pool, err = openWitnessPool(&lo, key.vkey, logger); err != nil {
			return err
		}
	}
	usePool(&cfg, pool)
	bcfg := backend.Config{
		ExistingLog:        true,
		BatchSize:          o.batchSize,
		SequencerInterval:  o.sequencerInterval,
		SkipIntegrityCheck: o.skipIntegrity,
		// Trillian's metrics register once per process: the default
		// log's. Each log's own (evident_*) are at /<name>/metrics.
		Logger: logger,
	}
	where := filepath.Join(n.dir, stateDB)
	if n.dsn != "" {
		// MySQL mode: the state tables and the tree in the log's own
		// database (checkNamedLogsMode checked the DSN).
		where, _ = dsnDatabase(n.dsn)
		where = "the MySQL " + where
		p := filepath.Join(n.dir, logDSNFile)
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("the DSN file is readable by others (it may hold a password); chmod 600 it", "file", p, "mode", fi.Mode().Perm().String())
		}
		n.state, err = storage.OpenMySQL(ctx, n.dsn)
		bcfg.MySQLDSN = n.dsn
	} else {
		if !fileExists(where) {
			return fmt.Errorf("%s is missing: restore it from a backup of the data directory", where)
		}
		n.state, err = storage.OpenSQLite(ctx, where)
		bcfg.SQLitePath = filepath.Join(n.dir, treeDB)
	}
	if err != nil {
		return err
	}
	if n.dsn != "" {
		// "log add" recorded the tree: a database that does not is not
		// this log's (an empty one would start a second history).
		if _, err := n.state.Setting(ctx, backend.TreeIDSetting); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s records no Trillian tree: it is not this log's database, or it was lost; restore it from a backup (docs/deployment.md)", where)
		} else if err != nil {
			return err
		}
	}
	if err := checkStateOwner(ctx, n.state, signer.Name(), key.vkey, where); err != nil {
		return err
	}
	bcfg.State = n.state
	n.be, err = backend.New(ctx, bcfg)
	if errors.Is(err, backend.ErrStateLost) {
		return fmt.Errorf("%w: %s does not record the log's tree; restore the log's state from a backup", err, where)
	}
	if err != nil {
		return err
	}
	if err := notePolicy(ctx, n.state, pool, logger); err != nil {
		return err
	}
	cfg.Origin, cfg.Signer, cfg.VKey = signer.Name(), signer, key.vkey
	useBackend(&cfg, n.be)
	cfg.State = n.state
	cfg.Auth, cfg.LogName, cfg.PrivateEntries = auth, n.name, n.private
	cfg.Logger = logger
	n.log, err = evlog.New(ctx, cfg)
	return err
}
