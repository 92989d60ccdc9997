package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/evidentlog/evident/checkpoint"
	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

// Several logs on one server. The default log lives in the data directory
// as before; each named log in a directory of its own under logs/, with
// the same layout (log.key, log.vkey, state.db, trillian.db), so that
// every per-origin and per-tree table and setting works unchanged, plus
// its settings: witness-policy (a copy of the policy it was given) and
// private (present for a private log). It is served at /<name>/.
const (
	logsDir        = "logs"           // the named logs, in the data directory
	logPolicyFile  = "witness-policy" // a named log's witness policy, if any
	logPrivateFile = "private"        // present: the named log is private
)

const logUsage = `Usage: evident-server log add [flags] [--origin O] [--witness_policy_file F] [--private] NAME
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

(the default tenant, the operator's, may use every log). Named logs run in
SQLite mode only: with --mysql_dsn or --trillian_addr the server serves the
default log alone and refuses to start if DATA_DIR/logs holds logs.

A NAME has 1 to 64 lowercase letters, digits, '.', '_' and '-', starting
with a letter or digit, and is not reserved: the server's own first path
segments and a few more (` + "%s" + `), and names starting with "evident.".
"log add" needs the default log to exist (start the server once); it
records "log.create" in the operations record of the default log and of the
new log. "log list" shows every log: name, prefix, origin, private, witnesses, verifier key.

Exit codes: 0 done; 1 failed; 2 usage: a bad, reserved or existing NAME, a
bad policy file, MySQL mode, or no default log. A failed "log add" leaves
nothing behind.

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
	var mysql, mysqlFile, trillianAddr string
	fs.StringVar(&c.dataDir, "data_dir", "evident-data", "the server's data `directory` (the default log's); named logs go in its logs/")
	fs.StringVar(&mysql, "mysql_dsn", "", "refused: named logs run in SQLite mode only")
	fs.StringVar(&mysqlFile, "mysql_dsn_file", "", "refused: named logs run in SQLite mode only")
	fs.StringVar(&trillianAddr, "trillian_addr", "", "refused: named logs run in SQLite mode only")
	if c.verb == "add" {
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
	if mysql != "" || mysqlFile != "" || env != "" || trillianAddr != "" {
		return nil, errors.New("named logs run in SQLite mode only (each keeps its state and tree in its own directory); with MySQL or a remote Trillian run one server per log (docs/deployment.md)")
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
	return c, nil
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
}

// origin is the log's origin: its verifier key's name.
func (d namedLogDir) origin() string {
	o, _, _ := strings.Cut(d.vkey, "+")
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
		out = append(out, d)
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (c *logCmd) list(stdout io.Writer) error {
	if !fileExists(filepath.Join(c.dataDir, stateDB)) {
		return fmt.Errorf("no log in %s (start the server once to create the default log)", c.dataDir)
	}
	logs, err := listLogs(c.dataDir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tPREFIX\tORIGIN\tPRIVATE\tWITNESSES\tVKEY")
	if v, err := os.ReadFile(filepath.Join(c.dataDir, vkeyFile)); err == nil {
		d := namedLogDir{vkey: strings.TrimSpace(string(v))}
		fmt.Fprintf(tw, "(default)\t/\t%s\t-\t-\t%s\n", d.origin(), d.vkey)
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, l := range logs {
		fmt.Fprintf(tw, "%s\t/%s/\t%s\t%s\t%s\t%s\n", l.name, l.name, l.origin(), yes(l.private), yes(l.policy != ""), l.vkey)
	}
	return tw.Flush()
}

// add creates the named log in a hidden directory beside its final
// place, and renames it there once it is complete: a failure leaves no
// log behind.
func (c *logCmd) add(ctx context.Context, stdout, stderr io.Writer) error {
	root := filepath.Join(c.dataDir, logsDir)
	dir := filepath.Join(root, c.name)
	if !fileExists(filepath.Join(c.dataDir, stateDB)) || !fileExists(filepath.Join(c.dataDir, vkeyFile)) {
		return usageError{fmt.Errorf("no default log's state database in %s: start the server once (in SQLite mode: named logs run in SQLite mode only) to create the default log, which holds the tenants and keys every log uses", c.dataDir)}
	}
	if fileExists(dir) {
		return usageError{fmt.Errorf("log %s exists already (%s)", c.name, dir)}
	}
	logs, err := listLogs(c.dataDir)
	if err != nil {
		return usageError{err}
	}
	var policy []byte
	if c.policyFile != "" {
		if policy, err = os.ReadFile(c.policyFile); err != nil {
			return usageError{fmt.Errorf("--witness_policy_file: %w", err)}
		}
		if _, err := checkpoint.ParsePolicy(policy); err != nil {
			return usageError{fmt.Errorf("--witness_policy_file %s: %w", c.policyFile, err)}
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
	taken := map[string]string{(namedLogDir{vkey: strings.TrimSpace(string(dv))}).origin(): "the default log"}
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
	if policy != nil {
		p, _ := checkpoint.ParsePolicy(policy)
		if ls := p.Logs(); len(ls) > 0 {
			return usageError{fmt.Errorf("--witness_policy_file %s names logs: a new log's key is made by this command, so its policy cannot name it yet; give a policy without log lines", c.policyFile)}
		}
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
	treeID, err := createNamedLog(ctx, tmp, c.name, key, policy, c.private)
	if err != nil {
		return fmt.Errorf("creating log %s: %w", c.name, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("creating log %s: %w", c.name, err)
	}
	done = true
	syncDir(root)

	// The operator's record, beside the tenants and keys that may use it.
	db, err := openAdminState(ctx, &options{dataDir: c.dataDir})
	if err != nil {
		return fmt.Errorf("log %s is created, but recording it in the operations record failed: %w", c.name, err)
	}
	defer db.Close()
	if err := db.RecordOp(ctx, "log.create", logCreateFields(c.name, key.vkey, policy, c.private)); err != nil {
		return fmt.Errorf("log %s is created, but recording it in the operations record failed: %w", c.name, err)
	}
	fmt.Fprintf(stdout, "log %s created in %s\nprefix: /%s/\norigin: %s\nvkey: %s\ntree: %d\n", c.name, dir, c.name, origin, key.vkey, treeID)
	fmt.Fprintf(stderr, "restart the server to serve it; grant tenants with: evident-server tenant grant TENANT %s\n", c.name)
	return nil
}

func logCreateFields(name, vkey string, policy []byte, private bool) map[string]any {
	f := map[string]any{"log": name, "vkey": vkey, "private": private}
	if policy != nil {
		h := sha256.Sum256(policy)
		f["witness_policy_sha256"] = hex.EncodeToString(h[:])
	}
	return f
}

// createNamedLog fills dir with a new log: its keys, settings, state
// database and Trillian tree. It returns the tree's ID.
func createNamedLog(ctx context.Context, dir, name string, key logKey, policy []byte, private bool) (int64, error) {
	if err := key.write(dir); err != nil {
		return 0, err
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
	state, err := storage.OpenSQLite(ctx, filepath.Join(dir, stateDB))
	if err != nil {
		return 0, err
	}
	defer state.Close()
	origin, _, _ := strings.Cut(key.vkey, "+")
	if err := checkStateOwner(ctx, state, origin, key.vkey, filepath.Join(dir, stateDB)); err != nil {
		return 0, err
	}
	be, err := backend.New(ctx, backend.Config{
		State:      state,
		SQLitePath: filepath.Join(dir, treeDB),
		Logger:     slog.New(slog.DiscardHandler),
	})
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

// checkNamedLogsMode refuses a server in MySQL or remote Trillian mode
// whose data directory holds named logs: they run in SQLite mode only.
// It runs before anything is opened.
func checkNamedLogsMode(o *options) error {
	if o.mysqlDSN == "" && o.trillianAddr == "" {
		return nil
	}
	dirs, err := listLogs(o.dataDir)
	if err != nil || len(dirs) == 0 {
		return err
	}
	return fmt.Errorf("%s holds named logs (%d), which run in SQLite mode only: start this server without --mysql_dsn and --trillian_addr, or move the logs out", filepath.Join(o.dataDir, logsDir), len(dirs))
}

// namedLog is a named log the server runs.
type namedLog struct {
	namedLogDir
	state  *storage.DB
	be     *backend.Backend
	log    *evlog.Log
	treeID int64
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

// openNamedLogs starts the named logs of o.dataDir (none when logs/ is
// absent or empty). Each reads its keys from auth, the default log's state
// database; base is the default log's Config, for the settings every log
// shares. On an error the logs started so far are closed.
func openNamedLogs(ctx context.Context, o *options, auth *storage.DB, base evlog.Config, logger *slog.Logger) (_ []*namedLog, err error) {
	if err := checkNamedLogsMode(o); err != nil {
		return nil, err
	}
	dirs, err := listLogs(o.dataDir)
	if err != nil || len(dirs) == 0 {
		return nil, err
	}
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
	cfg.Cosign, cfg.CosignStatus, cfg.WitnessPolicy, cfg.Held, cfg.HeldCheckpoint = nil, nil, nil, nil, nil
	if n.policy != "" {
		pool, err := openWitnessPool(&lo, key.vkey, logger)
		if err != nil {
			return err
		}
		cfg.Cosign, cfg.CosignStatus, cfg.WitnessPolicy = pool.Cosign, pool.StatusText, pool.Policy()
		cfg.Held, cfg.HeldCheckpoint = pool.Held, pool.HeldCheckpoint
	}
	where := filepath.Join(n.dir, stateDB)
	if !fileExists(where) {
		return fmt.Errorf("%s is missing: restore it from a backup of the data directory", where)
	}
	if n.state, err = storage.OpenSQLite(ctx, where); err != nil {
		return err
	}
	if err := checkStateOwner(ctx, n.state, signer.Name(), key.vkey, where); err != nil {
		return err
	}
	n.be, err = backend.New(ctx, backend.Config{
		ExistingLog:        true,
		State:              n.state,
		SQLitePath:         filepath.Join(n.dir, treeDB),
		BatchSize:          o.batchSize,
		SequencerInterval:  o.sequencerInterval,
		SkipIntegrityCheck: o.skipIntegrity,
		// Trillian's metrics register once per process: the default
		// log's. Each log's own (evident_*) are at /<name>/metrics.
		Logger: logger,
	})
	if errors.Is(err, backend.ErrStateLost) {
		return fmt.Errorf("%w: %s does not record the log's tree; restore the log's directory from a backup", err, where)
	}
	if err != nil {
		return err
	}
	if err := notePolicy(ctx, n.state, &lo, logger); err != nil {
		return err
	}
	cfg.Origin, cfg.Signer, cfg.VKey = signer.Name(), signer, key.vkey
	useBackend(&cfg, n.be)
	cfg.State = n.state
	cfg.Auth, cfg.LogName, cfg.PrivateEntries = auth, n.name, n.private
	cfg.Logger = logger
	n.treeID = n.be.TreeID
	n.log, err = evlog.New(ctx, cfg)
	return err
}
