package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
	"github.com/evidentlog/evident/witness"
)

// ownerSetting names the setting in which a state database records the
// verifier key of the log it belongs to (one per origin).
func ownerSetting(origin string) string { return "log_vkey:" + origin }

// checkStateOwner refuses a state database that belongs to another log:
// one that records another key under this origin, or holds checkpoints of
// other origins and none of this one. Starting on it would serve another
// log's checkpoints, or lose this log's tree ID and fork it. An accepted
// database records this log's key, so that a later swap is caught even
// before it holds checkpoints.
func checkStateOwner(ctx context.Context, state *storage.DB, origin, vkey, where string) error {
	if err := stateOwnerMismatch(ctx, state, origin, vkey, where); err != nil {
		return err
	}
	_, err := state.SetSettingOnce(ctx, ownerSetting(origin), []byte(vkey))
	return err
}

// stateOwnerMismatch is the check of checkStateOwner, recording nothing.
func stateOwnerMismatch(ctx context.Context, state *storage.DB, origin, vkey, where string) error {
	v, err := state.Setting(ctx, ownerSetting(origin))
	switch {
	case err == nil:
		if string(v) != vkey {
			return fmt.Errorf("the state database (%s) belongs to another log with the origin %s (key %s), not to this log's key (%s). "+
				"Restore this log's state database from a backup (docs/deployment.md)", where, origin, v, vkey)
		}
		return nil
	case !errors.Is(err, storage.ErrNotFound):
		return err
	}
	has, err := state.HasCheckpoints(ctx)
	if err != nil {
		return err
	}
	if has {
		c, err := state.LatestCheckpoint(ctx, origin)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("the state database (%s) holds checkpoints of other logs and none of this one (%s): it belongs to another log. "+
				"Restore this log's state database from a backup (docs/deployment.md)", where, origin)
		} else if err != nil {
			return err
		}
		v, err := checkpoint.NewVerifier(vkey)
		if err != nil {
			return err
		}
		if _, err := checkpoint.Open(c.Note, v); err != nil {
			return fmt.Errorf("the state database (%s) belongs to another log with the origin %s: its checkpoint of size %d does not verify with this log's key (%v). "+
				"Restore this log's state database from a backup (docs/deployment.md)", where, origin, c.Size, err)
		}
	}
	return nil
}

// checkRebuildable refuses --rebuild_state on a state database that is not
// lost: one that records the log's tree. (One that holds checkpoints but no
// tree is what a rebuild that stopped half-way leaves: it is done again.)
func checkRebuildable(ctx context.Context, state *storage.DB, where string) error {
	if v, err := state.Setting(ctx, backend.TreeIDSetting); err == nil {
		return fmt.Errorf("--rebuild_state: the state database (%s) is not lost: it records the log's Trillian tree %s. Start without --rebuild_state", where, v)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// rebuildState fills a new state database for the log whose tree be holds,
// from the checkpoints the witnesses of pool hold. The witnesses that
// answer must leave out too few to meet the policy's quorum by themselves,
// so that they include a witness of every quorum that cosigned the latest
// published checkpoint: the largest checkpoint they hold is then at least
// that one. Trillian's tree must extend it (same root at its size, or a
// verified consistency proof to the current tree). It is recorded as signed
// and as the published checkpoint, with every cosignature the witnesses
// holding it returned; the log carries on from there.
func rebuildState(ctx context.Context, pool *witness.Pool, state *storage.DB, be *backend.Backend, origin string, verifier note.Verifier, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	names, notes, errs := pool.Checkpoints(ctx, origin)
	type held struct {
		name string
		note []byte
		body []byte
		sigs [][]byte
		cp   *checkpoint.Signed
	}
	var got []held
	var missing []string
	var failed []string
	for i, name := range names {
		if errs[i] != nil {
			missing = append(missing, name)
			failed = append(failed, fmt.Sprintf("%s: %v", name, errs[i]))
			continue
		}
		cp, err := checkpoint.Open(notes[i], verifier)
		if err != nil {
			missing = append(missing, name)
			failed = append(failed, fmt.Sprintf("%s: its checkpoint does not verify with the log's key: %v", name, err))
			continue
		}
		body, sigs, err := checkpoint.SplitNote(notes[i])
		if err != nil {
			return err
		}
		got = append(got, held{name, notes[i], body, sigs, cp})
	}
	if p := pool.Policy(); len(missing) > 0 && p.Satisfied(missing) {
		return fmt.Errorf("--rebuild_state: too few witnesses served their checkpoint of this log: those missing (%s) could by themselves have cosigned a newer checkpoint than the others hold. "+
			"Bring them back (each must serve GET <url>/<hex SHA-256 of the origin>/checkpoint, as evident-witness does) and try again:\n  %s",
			strings.Join(missing, ", "), strings.Join(failed, "\n  "))
	}
	if len(got) == 0 {
		return errors.New("--rebuild_state: no witness served a checkpoint of this log")
	}
	best := got[0]
	for _, h := range got[1:] {
		if h.cp.Size > best.cp.Size {
			best = h
		}
	}
	// Every witness's checkpoint of that size must have its root (two
	// roots of one size are a fork); their cosignatures are gathered.
	var cosigs [][]byte
	var by []string
	witnesses := pool.Policy().Verifiers()
	for _, h := range got {
		if h.cp.Size != best.cp.Size {
			continue
		}
		if h.cp.Hash != best.cp.Hash {
			return fmt.Errorf("--rebuild_state: witnesses %s and %s hold different checkpoints of size %d: the log forked; keep both notes as evidence and do not start it", best.name, h.name, h.cp.Size)
		}
		for _, l := range h.sigs {
			for _, v := range witnesses {
				if checkpoint.VerifySignatureLine(h.body, l, v) == nil {
					cosigs = append(cosigs, l)
					break
				}
			}
		}
		by = append(by, h.name)
	}
	size, root, err := trillianRoot(ctx, be)
	if err != nil {
		return err
	}
	w := best.cp
	switch {
	case size < w.Size:
		return fmt.Errorf("--rebuild_state: Trillian's tree has %d entries, but witness %s holds a checkpoint of size %d: the tree is older than what was published. Restore the newer tree (docs/deployment.md)", size, best.name, w.Size)
	case size == w.Size && root != w.Hash:
		return fmt.Errorf("--rebuild_state: Trillian's tree of size %d has another root than the checkpoint witness %s holds: this tree is not the published log", size, best.name)
	case size > w.Size:
		resp, err := be.Log.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{LogId: be.TreeID, FirstTreeSize: int64(w.Size), SecondTreeSize: int64(size)})
		if err != nil {
			return fmt.Errorf("--rebuild_state: consistency proof %d→%d from Trillian: %w", w.Size, size, err)
		}
		if err := checkpoint.VerifyConsistency(w.Size, size, w.Hash, root, resp.GetProof().GetHashes()); err != nil {
			return fmt.Errorf("--rebuild_state: Trillian's tree of size %d does not extend the checkpoint of size %d that witness %s holds (%v): this tree is not the published log", size, w.Size, best.name, err)
		}
	}
	published, err := checkpoint.AppendSignatures(best.note, cosigs...)
	if err != nil {
		return err
	}
	// The checkpoint first, the tree last: a rebuild that stops half-way
	// leaves no tree recorded, so the log does not start until it is done.
	now := time.Now()
	if err := state.AddSigned(ctx, origin, w.Size, w.Hash, published, now); err != nil && !errors.Is(err, storage.ErrConflict) {
		return err
	}
	if err := state.AddCheckpoint(ctx, origin, w.Size, published, now); errors.Is(err, storage.ErrConflict) {
		stored, err := state.Checkpoint(ctx, origin, w.Size)
		if err != nil {
			return err
		}
		if c, err := checkpoint.Open(stored.Note, verifier); err != nil || c.Hash != w.Hash {
			return fmt.Errorf("--rebuild_state: the state database holds another checkpoint of size %d than the witnesses: %v", w.Size, err)
		}
	} else if err != nil {
		return err
	}
	id := strconv.FormatInt(be.TreeID, 10)
	if v, err := state.SetSettingOnce(ctx, backend.TreeIDSetting, []byte(id)); err != nil {
		return err
	} else if string(v) != id {
		return fmt.Errorf("--rebuild_state: the state database recorded tree %s meanwhile", v)
	}
	logger.Warn("rebuilt the state database from the witnesses' checkpoints", "size", w.Size, "held_by", by, "trillian_size", size, "tree_id", be.TreeID)
	return nil
}

// trillianRoot reads the size and root of the log's tree.
func trillianRoot(ctx context.Context, be *backend.Backend) (uint64, [32]byte, error) {
	resp, err := be.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: be.TreeID})
	if err != nil {
		return 0, [32]byte{}, fmt.Errorf("reading the root of Trillian tree %d: %w", be.TreeID, err)
	}
	var r types.LogRootV1
	if err := r.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return 0, [32]byte{}, fmt.Errorf("reading the root of Trillian tree %d: %w", be.TreeID, err)
	}
	if len(r.RootHash) != 32 {
		return 0, [32]byte{}, fmt.Errorf("the root of Trillian tree %d has a %d-byte hash", be.TreeID, len(r.RootHash))
	}
	return r.TreeSize, [32]byte(r.RootHash), nil
}
