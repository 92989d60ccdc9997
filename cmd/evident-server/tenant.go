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
	"time"

	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/witness"
)

const adminUsage = `Usage: evident-server tenant add [flags] NAME
       evident-server tenant list [flags]
       evident-server tenant quota [flags] [--rate N] [--burst N] [--backlog_permille N] NAME
       evident-server tenant grant [flags] NAME LOG
       evident-server tenant revoke-grant [flags] NAME LOG
       evident-server key issue [flags] [--key_file F] TENANT ROLE
       evident-server key list [flags] [TENANT]
       evident-server key rotate [flags] [--key_file F] KEY_ID
       evident-server key revoke [flags] KEY_ID

Manages the tenants (the organizations that submit to the log) and their API
keys, in the log's state database: the SQLite file in the data directory, or
MySQL/MariaDB. They work while the server runs; every server sharing the
state database applies a change within half a second (a revoked key is
refused on every server within 1 s).

A ROLE is submit (add entries), read (read what only the tenant may read) or
admin (both, and list and revoke the tenant's keys over HTTP: GET /v1/keys,
POST /v1/keys/KEY_ID/revoke). A tenant NAME has 1 to 64 lowercase letters,
digits, '.', '_' and '-'. "tenant quota" sets a tenant's own limits
(docs/deployment.md): 0 means the server's default (--tenant_rate,
--tenant_burst, --tenant_backlog_share), -1 no limit; the flags not given
keep their value. The tenant "default" always exists; the server's
write-token file is its admin key, listed as "write-token" (rotate it by
deleting the file and restarting the server).

"tenant grant" lets a tenant use the named log LOG of a server with several
logs (evident-server log --help); "tenant revoke-grant" takes that back:
every server refuses the tenant's keys there within 1 s (403). Every tenant
may use the default log; the default tenant may use every log. "tenant
list" shows each tenant's named logs.

"key issue" and "key rotate" print the new key once, on standard output (or
write it to a new 0600 --key_file); only its SHA-256 hash is stored, so it
cannot be shown again. "key rotate" issues a new key with the old one's
tenant and role and revokes the old one, in one transaction. A revoked key
never works again. KEY_ID is the 16-hex-digit ID that "key list" shows.

Exit codes: 0 done; 1 refused (unknown tenant or key, already revoked, ...);
2 usage, or the state database cannot be opened.

Flags:
`

// adminCmd is a parsed tenant or key command.
type adminCmd struct {
	group, verb string // "tenant" or "key"; "add", "list", "issue", "rotate", "revoke"
	tenant      string
	logName     string // tenant grant, revoke-grant
	role        storage.Role
	id          string
	keyFile     string
	quota       storage.Quota
	set         map[string]bool // the quota flags given
	opts        options         // dataDir, mysqlDSN
}

// parseAdmin parses the arguments after "evident-server" of a tenant or
// key command. It checks everything it can without the database.
func parseAdmin(args []string, env string, stderr io.Writer) (*adminCmd, error) {
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return nil, errors.New("give a command, e.g. \"tenant add NAME\"")
	}
	c := &adminCmd{group: args[0], verb: args[1]}
	fs := flag.NewFlagSet("evident-server "+c.group+" "+c.verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, adminUsage)
		fs.PrintDefaults()
	}
	var dsnFile string
	fs.StringVar(&c.opts.dataDir, "data_dir", "evident-data", "the log's data `directory` (in SQLite mode it holds the state database; tenant grant finds the named logs in its logs/)")
	fs.StringVar(&c.opts.mysqlDSN, "mysql_dsn", "", "the log's MySQL/MariaDB `dsn`, when it runs on MySQL (or $"+dsnEnv+")")
	fs.StringVar(&dsnFile, "mysql_dsn_file", "", "read the DSN from this `file`")
	issues := c.group == "key" && (c.verb == "issue" || c.verb == "rotate")
	if issues {
		fs.StringVar(&c.keyFile, "key_file", "", "write the new key to this new `file` (0600) instead of standard output")
	}
	if c.group == "tenant" && c.verb == "quota" {
		fs.Int64Var(&c.quota.Rate, "rate", 0, "entries a `second` the tenant may add, on average, per server (0: the server's default, -1: no limit)")
		fs.Int64Var(&c.quota.Burst, "burst", 0, "entries the tenant may add `at once` (0: the server's default, -1: no limit)")
		fs.Int64Var(&c.quota.BacklogPermille, "backlog_permille", 0, "share of --max_backlog the tenant's entries may take, in `thousandths` (0: the server's default, -1: no limit)")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return nil, err
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	pos := fs.Args()
	want := func(n int, names string) error {
		if len(pos) != n {
			return fmt.Errorf("%s %s takes %s, got %d arguments", c.group, c.verb, names, len(pos))
		}
		return nil
	}
	var err error
	switch c.group + " " + c.verb {
	case "tenant add":
		if err = want(1, "a NAME"); err == nil {
			c.tenant, err = pos[0], storage.CheckTenantName(pos[0])
		}
	case "tenant list":
		err = want(0, "no arguments")
	case "tenant grant", "tenant revoke-grant":
		if err = want(2, "a NAME and a LOG"); err == nil {
			if c.tenant, err = pos[0], storage.CheckTenantName(pos[0]); err == nil {
				c.logName, err = pos[1], evlog.CheckLogName(pos[1])
			}
		}
	case "tenant quota":
		if err = want(1, "a NAME"); err == nil {
			c.tenant, err = pos[0], storage.CheckTenantName(pos[0])
		}
		for _, v := range []int64{c.quota.Rate, c.quota.Burst, c.quota.BacklogPermille} {
			if err == nil && v < -1 {
				err = fmt.Errorf("a quota is -1 (no limit), 0 (the server's default) or positive, not %d", v)
			}
		}
		if err == nil && c.quota.BacklogPermille > 1000 {
			err = fmt.Errorf("--backlog_permille is at most 1000, not %d", c.quota.BacklogPermille)
		}
		if err == nil && !c.set["rate"] && !c.set["burst"] && !c.set["backlog_permille"] {
			err = errors.New("tenant quota needs --rate, --burst or --backlog_permille")
		}
	case "key issue":
		if err = want(2, "TENANT ROLE"); err == nil {
			if err = storage.CheckTenantName(pos[0]); err == nil {
				c.tenant = pos[0]
				c.role, err = storage.ParseRole(pos[1])
			}
		}
	case "key list":
		if len(pos) > 1 {
			err = want(1, "at most a TENANT")
		} else if len(pos) == 1 {
			c.tenant, err = pos[0], storage.CheckTenantName(pos[0])
		}
	case "key rotate", "key revoke":
		if err = want(1, "a KEY_ID"); err == nil {
			c.id, err = pos[0], storage.CheckKeyID(pos[0])
		}
	default:
		fmt.Fprint(stderr, adminUsage)
		return nil, fmt.Errorf("unknown command %q", truncateArg(c.group+" "+c.verb))
	}
	if err != nil {
		return nil, err
	}
	if err := mysqlDSN(&c.opts, dsnFile, env); err != nil {
		return nil, err
	}
	if c.opts.dataDir == "" && c.opts.mysqlDSN == "" {
		return nil, errors.New("--data_dir must not be empty")
	}
	return c, nil
}

func truncateArg(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// runAdmin is "evident-server tenant|key ...": it returns the process's
// exit code.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseAdmin(args, os.Getenv(dsnEnv), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "evident-server:", err)
		return 2
	}
	db, err := openAdminState(ctx, &c.opts)
	if err != nil {
		fmt.Fprintln(stderr, "evident-server:", err)
		return 2
	}
	defer db.Close()
	if err := c.run(ctx, db, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "evident-server:", err)
		return 1
	}
	return 0
}

// openAdminState opens the state database of an existing log, for the
// admin commands and check: in SQLite mode it must exist (neither
// creates a log).
func openAdminState(ctx context.Context, o *options) (*storage.DB, error) {
	if o.mysqlDSN != "" {
		return storage.OpenMySQL(ctx, o.mysqlDSN)
	}
	path := filepath.Join(o.dataDir, stateDB)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no state database at %s (start the server once to create the log, or give --mysql_dsn): %w", path, err)
	}
	return storage.OpenSQLite(ctx, path)
}

func (c *adminCmd) run(ctx context.Context, db *storage.DB, stdout, stderr io.Writer) error {
	switch c.group + " " + c.verb {
	case "tenant add":
		t, err := db.AddTenant(ctx, c.tenant)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s added; issue its keys with: evident-server key issue %s submit\n", t.Name, t.Name)
	case "tenant list":
		ts, err := db.Tenants(ctx)
		if err != nil {
			return err
		}
		gs, err := db.Grants(ctx)
		if err != nil {
			return err
		}
		grants := grantsByTenant(gs)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tCREATED\tNAMED LOGS\tQUOTA")
		for _, t := range ts {
			logs := strings.Join(grants[t.Name], ",")
			switch {
			case t.Name == storage.DefaultTenant:
				logs = "all"
			case logs == "":
				logs = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.CreatedAt.UTC().Format(time.RFC3339), logs, t.Quota)
		}
		return tw.Flush()
	case "tenant grant":
		if err := checkLogExists(c.opts.dataDir, c.logName); err != nil {
			return err
		}
		if err := db.GrantLog(ctx, c.tenant, c.logName); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s may use log %s (/%s/); every server applies it within 1 s\n", c.tenant, c.logName, c.logName)
	case "tenant revoke-grant":
		if err := db.RevokeGrant(ctx, c.tenant, c.logName); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s may no longer use log %s; every server refuses its keys there within 1 s\n", c.tenant, c.logName)
	case "tenant quota":
		ts, err := db.Tenants(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ts, func(t storage.Tenant) bool { return t.Name == c.tenant })
		if i < 0 {
			return fmt.Errorf("tenant %q: %w", c.tenant, storage.ErrNoTenant)
		}
		q := ts[i].Quota
		if c.set["rate"] {
			q.Rate = c.quota.Rate
		}
		if c.set["burst"] {
			q.Burst = c.quota.Burst
		}
		if c.set["backlog_permille"] {
			q.BacklogPermille = c.quota.BacklogPermille
		}
		if err := db.SetQuota(ctx, c.tenant, q); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s: %s; every server applies it within 1 s\n", c.tenant, q)
	case "key issue":
		key, k, err := db.IssueKey(ctx, c.tenant, c.role)
		if err != nil {
			return err
		}
		return c.printKey(key, k, stdout, stderr)
	case "key list":
		keys, err := db.APIKeys(ctx, c.tenant)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY_ID\tTENANT\tROLE\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if !k.RevokedAt.IsZero() {
				revoked = k.RevokedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Tenant, k.Role, k.CreatedAt.UTC().Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "key rotate":
		key, k, old, err := db.RotateKey(ctx, "", c.id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "key %s revoked; every server refuses it within 1 s\n", old.ID)
		return c.printKey(key, k, stdout, stderr)
	case "key revoke":
		k, err := db.RevokeKey(ctx, "", c.id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s (tenant %s, role %s) revoked; every server refuses it within 1 s\n", k.ID, k.Tenant, k.Role)
	}
	return nil
}

// printKey shows a new key once: on stdout, or written to --key_file.
func (c *adminCmd) printKey(key string, k storage.APIKey, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "key %s issued: tenant %s, role %s\n", k.ID, k.Tenant, k.Role)
	if c.keyFile != "" {
		if err := writeSecret(c.keyFile, key); err != nil {
			// The key is stored but nobody has it: revoke it with
			// "key revoke" (its ID is above).
			return fmt.Errorf("writing the key to --key_file (revoke key %s, which nobody holds): %w", k.ID, err)
		}
		fmt.Fprintf(stderr, "the key is in %s (0600); it is not stored anywhere else\n", c.keyFile)
		return nil
	}
	fmt.Fprintln(stderr, "the key follows, shown this once (only its hash is stored):")
	_, err := fmt.Fprintln(stdout, key)
	return err
}

// notePolicy records a change of the witness policy file's contents
// since the last start in the operations record (storage.NotePolicy).
func notePolicy(ctx context.Context, state *storage.DB, pool *witness.Pool, logger *slog.Logger) error {
	digest := ""
	if pool != nil {
		digest = policyDigest(pool.Policy().Text())
	}
	changed, err := state.NotePolicy(ctx, "witness_policy", digest)
	if err != nil {
		return err
	}
	if changed {
		logger.Info("the witness policy changed since the last start; recorded in the operations record", "sha256", digest)
	}
	return nil
}

// policyDigest is the hex SHA-256 of a witness policy's text, as the
// operations record names a policy.
func policyDigest(text []byte) string {
	h := sha256.Sum256(text)
	return hex.EncodeToString(h[:])
}
