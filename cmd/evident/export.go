package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/merkle/compact"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/atomicfile"
)

const exportHelp = `
Exports a log as static files: its latest checkpoint and every tile of
that tree, laid out as the C2SP tlog-tiles API (DIR/checkpoint,
DIR/tile/<L>/<N>[.p/<W>], DIR/tile/entries/<N>[.p/<W>]), so that any web
server or object store can serve DIR as it is, with full tiles cached
forever. Monitors and auditors (evident monitor/audit --log URL) read such
a copy like the log itself; so does every tlog-tiles client.

Nothing is written unchecked: every entry bundle must hash to its level-0
tile, every upper tile must hash from the tiles below, and the whole tree
to the checkpoint's root (with --log_key, the checkpoint's signature is
checked too); else a SECURITY ERROR, exit 1, and no checkpoint is written.
The checkpoint is written last, atomically: a reader of DIR never sees a
checkpoint whose tiles are missing.

With --resume, full tiles already in DIR are read from disk (and checked
the same way) instead of downloaded, and the new checkpoint must extend
the one in DIR (same origin, no smaller, consistent): run it from cron to
keep a mirror. Without --resume, DIR must not hold an export yet.`

func runExportTiles(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "export-tiles", "--url URL --dir DIR [--resume] [--log_key VKEY]", exportHelp)
	logURL := fs.String("url", "", "the log's base URL (or another static copy's)")
	dir := fs.String("dir", "", "directory to write the static copy into (created if missing)")
	resume := fs.Bool("resume", false, "update an earlier export in --dir, reusing its full tiles")
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it: check the checkpoint's signature")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *logURL == "" || *dir == "" {
		return usagef("--url and --dir are required")
	}
	c, err := client.New(ctx, client.Config{URL: *logURL, Tiles: true, UserAgent: "evident-cli"})
	if err != nil {
		return usagef("--url: %v", err)
	}
	defer c.Close()
	x := &exporter{c: c, dir: *dir, resume: *resume}
	if *logKey != "" {
		v, err := loadLogKey(*logKey)
		if err != nil {
			return err
		}
		x.verify = func(raw []byte) (*checkpoint.Signed, error) { return checkpoint.Open(raw, v) }
	}
	res, err := x.run(ctx)
	if err != nil {
		return err
	}
	e.result(map[string]any{"ok": true, "origin": res.cp.Origin, "tree_size": res.cp.Size, "root_hash": fmt.Sprintf("%x", res.cp.Hash),
		"tiles_fetched": res.fetched, "tiles_reused": res.reused},
		fmt.Sprintf("OK: exported %s at size %d (root %x) to %s: %d tiles fetched, %d reused", res.cp.Origin, res.cp.Size, res.cp.Hash[:8], *dir, res.fetched, res.reused))
	return nil
}

// exporter writes one static copy of a log.
type exporter struct {
	c      *client.Client
	dir    string
	resume bool
	verify func([]byte) (*checkpoint.Signed, error) // nil: signature not checked

	cp      checkpoint.Checkpoint
	fetched int
	reused  int
}

func (x *exporter) run(ctx context.Context) (*exporter, error) {
	old, err := x.previous()
	if err != nil {
		return nil, err
	}
	raw, err := x.c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if x.cp, err = x.parse(raw); err != nil {
		return nil, err
	}
	if old != nil && (old.Origin != x.cp.Origin || old.Size > x.cp.Size) {
		return nil, &securityError{msg: fmt.Sprintf("the log's checkpoint (%s, size %d) does not extend the one in %s (%s, size %d)", x.cp.Origin, x.cp.Size, x.dir, old.Origin, old.Size)}
	}
	rng := (&compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}).NewEmptyRange(0)
	var tops [][]byte // the top hashes of the full tiles of the level below
	size := x.cp.Size
	for n := uint64(0); n*256 < size; n++ {
		w := int(min(256, size-n*256))
		hashes, bundle, err := x.bottom(ctx, n, w)
		if err != nil {
			return nil, err
		}
		for i := 0; i < len(hashes); i += 32 {
			if err := rng.Append(hashes[i:i+32], nil); err != nil {
				return nil, err
			}
			if old != nil && rng.End() == old.Size && !rootIs(rng, old.Hash) {
				return nil, &securityError{msg: fmt.Sprintf("the log's tree at size %d does not have the root of the checkpoint in %s", old.Size, x.dir)}
			}
		}
		if err := x.write(-1, n, w, bundle); err != nil {
			return nil, err
		}
		if err := x.write(0, n, w, hashes); err != nil {
			return nil, err
		}
		if w == 256 {
			tops = append(tops, tileRoot(hashes))
		}
	}
	if size > 0 && !rootIs(rng, x.cp.Hash) || size == 0 && x.cp.Hash != checkpoint.EmptyRoot {
		return nil, &securityError{msg: fmt.Sprintf("the log's entries do not hash to its checkpoint's root %x", x.cp.Hash)}
	}
	for level := 1; len(tops) > 0; level++ {
		if tops, err = x.upper(ctx, level, tops); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(x.dir, 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(x.dir, "checkpoint"), raw, 0o644); err != nil {
		return nil, err
	}
	return x, nil
}

// previous returns the checkpoint of the export in dir (nil if none).
func (x *exporter) previous() (*checkpoint.Checkpoint, error) {
	raw, err := os.ReadFile(filepath.Join(x.dir, "checkpoint"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	if !x.resume {
		return nil, usagef("%s already holds an export: use --resume to update it", x.dir)
	}
	cp, err := x.parse(raw)
	if err != nil {
		return nil, usagef("the checkpoint in %s: %v", x.dir, err)
	}
	return &cp, nil
}

func (x *exporter) parse(raw []byte) (checkpoint.Checkpoint, error) {
	if x.verify != nil {
		s, err := x.verify(raw)
		if err != nil {
			return checkpoint.Checkpoint{}, verifyFailure("checkpoint", err)
		}
		return s.Checkpoint, nil
	}
	body, _, _ := strings.Cut(string(raw), "\n\n")
	cp, err := checkpoint.Parse([]byte(body + "\n"))
	if err != nil {
		return cp, verifyFailure("checkpoint", err)
	}
	return cp, nil
}

// bottom returns the level-0 tile n of width w and its entry bundle,
// checked against each other.
func (x *exporter) bottom(ctx context.Context, n uint64, w int) ([]byte, []byte, error) {
	hashes, err := x.tile(ctx, 0, n, w)
	if err != nil {
		return nil, nil, err
	}
	bundle, err := x.tile(ctx, -1, n, w)
	if err != nil {
		return nil, nil, err
	}
	entries, err := client.SplitBundle(bundle)
	if err != nil {
		return nil, nil, &securityError{msg: fmt.Sprintf("entry bundle %d is malformed", n)}
	}
	var got []byte
	for _, e := range entries {
		h := checkpoint.LeafHash(e)
		got = append(got, h[:]...)
	}
	if !bytes.Equal(got, hashes) {
		return nil, nil, &securityError{msg: fmt.Sprintf("the entries of bundle %d do not hash to hash tile 0/%d", n, n)}
	}
	return hashes, bundle, nil
}

// upper checks and writes the tiles of a level from the top hashes of the
// full tiles below, and returns its own full tiles' top hashes.
func (x *exporter) upper(ctx context.Context, level int, below [][]byte) ([][]byte, error) {
	var tops [][]byte
	for n := uint64(0); n*256 < uint64(len(below)); n++ {
		w := int(min(256, uint64(len(below))-n*256))
		want := bytes.Join(below[n*256:n*256+uint64(w)], nil)
		got, err := x.tile(ctx, level, n, w)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, want) {
			return nil, &securityError{msg: fmt.Sprintf("hash tile %d/%d does not hash from the tiles below it", level, n)}
		}
		if err := x.write(level, n, w, got); err != nil {
			return nil, err
		}
		if w == 256 {
			tops = append(tops, tileRoot(got))
		}
	}
	return tops, nil
}

// tile returns a tile: a full one from dir with --resume if it is there,
// else from the log.
func (x *exporter) tile(ctx context.Context, level int, n uint64, w int) ([]byte, error) {
	if x.resume && w == 256 {
		b, err := os.ReadFile(x.path(level, n, w))
		if err == nil {
			x.reused++
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	size := x.cp.Size // the tree whose tile of width w this is
	b, err := x.c.Tile(ctx, level, n, size)
	if err != nil {
		return nil, err
	}
	x.fetched++
	return b, nil
}

func (x *exporter) path(level int, n uint64, w int) string {
	return filepath.Join(x.dir, "tile", filepath.FromSlash(checkpoint.TilePath(level, n, w%256)))
}

// write stores a tile (unless it is there already: tiles never change).
func (x *exporter) write(level int, n uint64, w int, data []byte) error {
	p := x.path(level, n, w)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o644)
}

func rootIs(rng *compact.Range, want [32]byte) bool {
	r, err := rng.GetRootHash(nil)
	return err == nil && bytes.Equal(r, want[:])
}

// tileRoot returns the root of a full tile's 256 hashes.
func tileRoot(data []byte) []byte {
	r := checkpoint.SubtreeRoot(data)
	return r[:]
}
