package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

const checkUsage = `Usage: evident-server check [--data_dir D] [--mysql_dsn DSN | --mysql_dsn_file F]

Verifies a stopped log's whole store, offline: every published checkpoint in
the state database against the log's key (log.vkey), every entry's stored
leaf hash against its value, the root recomputed from the entries at
the size of every published checkpoint against that checkpoint, and every
stored tile (tlog-tiles hash tiles and entry bundles) against the one
recomputed from the entries. It reads
only; run it on a stopped server (SQLite mode) or a copy. It prints the
first damaged index and what is wrong. It checks the named logs in
DATA_DIR/logs too, one line each ("log NAME OK: ..."), each in its own
store: its directory's databases, or in MySQL mode the database of its
logs/NAME/mysql-dsn. The exit code is the worst of all.

Exit codes: 0 the store checks out; 1 damage found; 2 usage, or the store
cannot be opened.

Flags:
`

// errDamaged is returned by check when the store does not check out.
var errDamaged = errors.New("damage found")

// runCheck is "evident-server check": it returns the process's exit code.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evident-server check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, checkUsage)
		fs.PrintDefaults()
	}
	o := &options{}
	var dsnFile string
	fs.StringVar(&o.dataDir, "data_dir", "evident-data", "the log's data `directory` (log.vkey, and in SQLite mode the databases)")
	fs.StringVar(&o.mysqlDSN, "mysql_dsn", "", "the log's MySQL/MariaDB `dsn`, when it runs on MySQL (or $"+dsnEnv+")")
	fs.StringVar(&dsnFile, "mysql_dsn_file", "", "read the DSN from this `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "evident-server check: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := mysqlDSN(o, dsnFile, os.Getenv(dsnEnv)); err != nil {
		fmt.Fprintln(stderr, "evident-server check:", err)
		return 2
	}
	n, err := check(ctx, o, stdout)
	code := reportCheck("", n, err, stdout, stderr)
	// The named logs of a server with several, each a data directory of
	// its own (logs.go), with its own MySQL database in MySQL mode.
	logs, err := listLogs(o.dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "evident-server check:", err)
		return 2
	}
	for _, l := range logs {
		n, err := check(ctx, &options{dataDir: l.dir, mysqlDSN: l.dsn}, stdout)
		code = max(code, reportCheck("log "+l.name+" ", n, err, stdout, stderr))
	}
	return code
}

// reportCheck prints the outcome of one log's check, its name first
// (label: "" for the default log), and returns its exit code.
func reportCheck(label, summary string, err error, stdout, stderr io.Writer) int {
	switch {
	case errors.Is(err, errDamaged):
		fmt.Fprintf(stdout, "%sDAMAGED: %v\n", label, err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "evident-server check: %s%v\n", label, err)
		return 2
	}
	fmt.Fprintf(stdout, "%sOK: %s\n", label, summary)
	return 0
}

// check verifies the store of the log in o.dataDir and returns a summary.
func check(ctx context.Context, o *options, progress io.Writer) (string, error) {
	vk, err := os.ReadFile(filepath.Join(o.dataDir, vkeyFile))
	if err != nil {
		return "", fmt.Errorf("reading the log's verifier key: %w", err)
	}
	verifier, err := checkpoint.NewVerifier(strings.TrimSpace(string(vk)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", vkeyFile, err)
	}
	state, err := openAdminState(ctx, o)
	if err != nil {
		return "", err
	}
	bcfg := backend.Config{NoSequencer: true, Logger: slog.New(slog.DiscardHandler), MySQLDSN: o.mysqlDSN}
	if o.mysqlDSN == "" {
		bcfg.SQLitePath = filepath.Join(o.dataDir, treeDB)
	}
	defer state.Close()
	if _, err := state.Setting(ctx, backend.TreeIDSetting); err != nil {
		return "", fmt.Errorf("the state database records no Trillian tree: %w", err)
	}
	bcfg.State = state
	be, err := backend.New(ctx, bcfg)
	if err != nil {
		return "", err
	}
	defer be.Close()
	return checkStore(ctx, be, state, verifier, progress)
}

// checkStore does the work of check on an open store.
func checkStore(ctx context.Context, be *backend.Backend, state *storage.DB, verifier note.Verifier, progress io.Writer) (string, error) {
	origin := verifier.Name()
	var cps []*checkpoint.Signed
	for from := uint64(0); ; {
		page, err := state.Checkpoints(ctx, origin, from, 1000)
		if err != nil {
			return "", fmt.Errorf("reading published checkpoints: %w", err)
		}
		for _, c := range page {
			s, err := checkpoint.Open(c.Note, verifier)
			if err != nil || s.Size != c.Size {
				return "", fmt.Errorf("%w: the published checkpoint of size %d does not verify with the log's key: %v", errDamaged, c.Size, err)
			}
			cps = append(cps, s)
			from = c.Size + 1
		}
		if len(page) < 1000 {
			break
		}
	}
	if len(cps) == 0 {
		return "", fmt.Errorf("%w: the state database holds no published checkpoint of %s", errDamaged, origin)
	}
	size, _, err := trillianRoot(ctx, be)
	if err != nil {
		return "", err
	}
	last := cps[len(cps)-1]
	if size < last.Size {
		return "", fmt.Errorf("%w: Trillian's tree has %d entries, fewer than the published checkpoint of size %d", errDamaged, size, last.Size)
	}
	tiled, _, err := state.TiledSize(ctx, origin)
	if err != nil {
		return "", fmt.Errorf("reading the tiled size: %w", err)
	}
	if tiled > size {
		return "", fmt.Errorf("%w: the stored tiles cover %d entries, but Trillian's tree has %d", errDamaged, tiled, size)
	}
	tc := &tileCheck{ctx: ctx, state: state, origin: origin, tiled: tiled, b: evlog.NewTileBuilder()}
	rf := compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}
	r := rf.NewEmptyRange(0)
	next := 0 // the next checkpoint to compare
	for ; next < len(cps) && cps[next].Size == 0; next++ {
		if cps[next].Hash != checkpoint.EmptyRoot {
			return "", fmt.Errorf("%w: the published size-0 checkpoint has root %x, not the empty tree's", errDamaged, cps[next].Hash)
		}
	}
	end := max(last.Size, tiled)
	for index := uint64(0); index < end; {
		resp, err := be.Log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: be.TreeID, StartIndex: int64(index), Count: int64(min(end-index, 1000))})
		if err != nil {
			return "", fmt.Errorf("%w: reading entries from %d: %v", errDamaged, index, err)
		}
		if len(resp.Leaves) == 0 {
			return "", fmt.Errorf("%w: entry %d is missing from Trillian's tree", errDamaged, index)
		}
		for _, leaf := range resp.Leaves {
			if leaf.LeafIndex != int64(index) {
				return "", fmt.Errorf("%w: entry %d: Trillian returned entry %d in its place", errDamaged, index, leaf.LeafIndex)
			}
			h := checkpoint.LeafHash(leaf.LeafValue)
			if !bytes.Equal(h[:], leaf.MerkleLeafHash) {
				return "", fmt.Errorf("%w: entry %d: its value does not hash to its stored leaf hash (%x, stored %x)", errDamaged, index, h, leaf.MerkleLeafHash)
			}
			if err := r.Append(h[:], nil); err != nil {
				return "", err
			}
			if err := tc.add(leaf.LeafValue, h); err != nil {
				return "", err
			}
			index++
			for ; next < len(cps) && cps[next].Size == index; next++ {
				root, err := r.GetRootHash(nil)
				if err != nil {
					return "", err
				}
				if !bytes.Equal(root, cps[next].Hash[:]) {
					return "", fmt.Errorf("%w: the entries up to %d hash to root %x, but the published checkpoint of size %d has root %x: an entry below %d was changed",
						errDamaged, index-1, root, cps[next].Size, cps[next].Hash, index)
				}
			}
			if index%100000 == 0 {
				fmt.Fprintf(progress, "checked %d of %d entries\n", index, end)
			}
		}
	}
	if err := tc.finish(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d entries, %d published checkpoints (latest size %d), Trillian's tree %d entries, tiles of %d entries: every leaf hash, every checkpoint's root and every stored tile checks out",
		last.Size, len(cps), last.Size, size, tiled), nil
}

// tileCheck recomputes the log's tlog-tiles (hash tiles and entry bundles)
// of the tiled tree from Trillian's entries with the log's own
// evlog.TileBuilder, as check reads them in order, and compares each with
// the stored one: full tiles as they fill, partial ones at the tiled size
// at the end.
type tileCheck struct {
	ctx    context.Context
	state  *storage.DB
	origin string
	tiled  uint64
	b      *evlog.TileBuilder
}

// add adds the next entry, if the tiles cover it, and compares the tiles
// it fills.
func (c *tileCheck) add(value []byte, hash [32]byte) error {
	if c.b.Size() >= c.tiled {
		return nil
	}
	var err error
	if aerr := c.b.Add(value, hash, func(t storage.Tile) {
		if err == nil {
			err = c.compare(c.ctx, t.Level, t.Index, t.Width, t.Data)
		}
	}); aerr != nil {
		return aerr
	}
	return err
}

// finish compares the partial tiles of the tiled tree.
func (c *tileCheck) finish(ctx context.Context) error {
	for _, t := range c.b.Changed() {
		if err := c.compare(ctx, t.Level, t.Index, t.Width, t.Data); err != nil {
			return err
		}
	}
	return nil
}

// compare compares the stored tile (level, index) with want, of width
// width.
func (c *tileCheck) compare(ctx context.Context, level int, index uint64, width int, want []byte) error {
	name := "tile/" + checkpoint.TilePath(level, index, 0)
	if width < 256 {
		name = "tile/" + checkpoint.TilePath(level, index, width)
	}
	t, err := c.state.GetTile(ctx, c.origin, level, index)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: the tile %s is missing from the state database (the tiles cover %d entries)", errDamaged, name, c.tiled)
	}
	if err != nil {
		return fmt.Errorf("reading the tile %s: %w", name, err)
	}
	if t.Width != width || !bytes.Equal(t.Data, want) {
		return fmt.Errorf("%w: the stored tile %s (width %d) differs from the one recomputed from the entries", errDamaged, name, t.Width)
	}
	return nil
}
