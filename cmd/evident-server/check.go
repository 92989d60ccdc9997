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
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

const checkUsage = `Usage: evident-server check [--data_dir D] [--mysql_dsn DSN | --mysql_dsn_file F]

Verifies a stopped log's whole store, offline: every published checkpoint in
the state database against the log's key (log.vkey), every entry's stored
leaf hash against its value, and the root recomputed from the entries at
the size of every published checkpoint against that checkpoint. It reads
only; run it on a stopped server (SQLite mode) or a copy. It prints the
first damaged index and what is wrong.

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
	switch {
	case errors.Is(err, errDamaged):
		fmt.Fprintln(stdout, "DAMAGED:", err)
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "evident-server check:", err)
		return 2
	}
	fmt.Fprintln(stdout, "OK:", n)
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
	var state *storage.DB
	bcfg := backend.Config{NoSequencer: true, Logger: slog.New(slog.DiscardHandler)}
	if o.mysqlDSN != "" {
		state, err = storage.OpenMySQL(ctx, o.mysqlDSN)
		bcfg.MySQLDSN = o.mysqlDSN
	} else {
		path := filepath.Join(o.dataDir, stateDB)
		if _, serr := os.Stat(path); serr != nil {
			return "", fmt.Errorf("the state database: %w", serr)
		}
		state, err = storage.OpenSQLite(ctx, path)
		bcfg.SQLitePath = filepath.Join(o.dataDir, treeDB)
	}
	if err != nil {
		return "", err
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
	size, err := trillianSize(ctx, be)
	if err != nil {
		return "", err
	}
	last := cps[len(cps)-1]
	if size < last.Size {
		return "", fmt.Errorf("%w: Trillian's tree has %d entries, fewer than the published checkpoint of size %d", errDamaged, size, last.Size)
	}
	rf := compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}
	r := rf.NewEmptyRange(0)
	next := 0 // the next checkpoint to compare
	for ; next < len(cps) && cps[next].Size == 0; next++ {
		if cps[next].Hash != checkpoint.EmptyRoot {
			return "", fmt.Errorf("%w: the published size-0 checkpoint has root %x, not the empty tree's", errDamaged, cps[next].Hash)
		}
	}
	for index := uint64(0); index < last.Size; {
		resp, err := be.Log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: be.TreeID, StartIndex: int64(index), Count: int64(min(last.Size-index, 1000))})
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
				fmt.Fprintf(progress, "checked %d of %d entries\n", index, last.Size)
			}
		}
	}
	return fmt.Sprintf("%d entries, %d published checkpoints (latest size %d), Trillian's tree %d entries: every leaf hash and every checkpoint's root checks out",
		last.Size, len(cps), last.Size, size), nil
}

// trillianSize is the size of the log's tree in Trillian.
func trillianSize(ctx context.Context, be *backend.Backend) (uint64, error) {
	r, err := be.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: be.TreeID})
	if err != nil {
		return 0, fmt.Errorf("reading Trillian's root: %w", err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(r.GetSignedLogRoot().GetLogRoot()); err != nil {
		return 0, fmt.Errorf("reading Trillian's root: %w", err)
	}
	return root.TreeSize, nil
}
