package main

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/atomicfile"
)

const receiptHelp = `
Fetches the receipt (tlog-proof) of an entry already in the log, against the
latest published checkpoint (or the one of --tree_size), and prints it on
stdout or writes it to --out. With --entry and --log_key the receipt is
verified (as "evident verify" does) before it is written.

An entry the log does not hold (it answers 404) exits 1 with reason
not_found: these are not the bytes that were logged, or not yet under a
published checkpoint.`

func runReceipt(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "receipt", "--log URL (--entry FILE | --leaf_hash HEX) [--log_key VKEY [--policy FILE]] [--out FILE]", receiptHelp)
	logURL := fs.String("log", "", "the log's base URL")
	entryFile := fs.String("entry", "", `the entry's file ("-" for stdin)`)
	leafHex := fs.String("leaf_hash", "", "the entry's leaf hash, SHA-256(0x00 || entry), in hex")
	treeSize := fs.Uint64("tree_size", 0, "tree size of the checkpoint to prove against (0: latest)")
	logKey := fs.String("log_key", "", "verify the receipt with this log verifier key (or file); needs --entry")
	policyFile := fs.String("policy", "", "witness policy file for verification")
	out := fs.String("out", "", "write the receipt to this file instead of stdout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if (*entryFile == "") == (*leafHex == "") {
		return usagef("give exactly one of --entry and --leaf_hash")
	}
	var entry []byte
	var leaf [32]byte
	if *entryFile != "" {
		if entry, err = e.readArg(*entryFile, maxEntryFile); err != nil {
			return usagef("--entry: %v", err)
		}
		leaf = checkpoint.LeafHash(entry)
	} else {
		b, err := hex.DecodeString(*leafHex)
		if err != nil || len(b) != 32 {
			return usagef("--leaf_hash must be 64 hex digits")
		}
		leaf = [32]byte(b)
	}
	if *logKey != "" && entry == nil {
		return usagef("--log_key needs --entry (verification needs the entry's bytes)")
	}
	c, err := newClient(ctx, *logURL, "")
	if err != nil {
		return err
	}
	defer c.Close()
	rb, err := c.Receipt(ctx, leaf, *treeSize)
	if err != nil {
		if client.IsNotFound(err) {
			// The log answered, and correctly: this is a finding, not a
			// network failure (exit 1, reason not_found).
			where := "the log's published tree"
			if *treeSize > 0 {
				where = fmt.Sprintf("the log's checkpoint of size %d", *treeSize)
			}
			return &failure{reason: "not_found", err: err, msg: fmt.Sprintf("entry %x is not in %s (%v)", leaf, where, err)}
		}
		return err
	}
	r, err := checkpoint.ParseReceipt(rb)
	if err != nil {
		return verifyFailure("the log served a malformed receipt", err)
	}
	verified := false
	if *logKey != "" {
		v, err := loadLogKey(*logKey)
		if err != nil {
			return err
		}
		policy, err := loadPolicy(*policyFile)
		if err != nil {
			return err
		}
		if _, err := checkpoint.VerifyReceipt(r, entry, v, policy); err != nil {
			return receiptFailure("the log served a receipt that does not verify: ", r, entry, v, err)
		}
		verified = true
	}
	if *out != "" {
		if err := atomicfile.WriteFile(*out, rb, 0o644); err != nil {
			return fmt.Errorf("writing receipt: %w", err)
		}
		e.result(map[string]any{"ok": true, "index": r.Index, "leaf_hash": hex.EncodeToString(leaf[:]), "verified": verified, "file": *out},
			fmt.Sprintf("receipt for index %d written to %s", r.Index, *out))
		return nil
	}
	if e.json {
		e.emitJSON(map[string]any{"ok": true, "index": r.Index, "leaf_hash": hex.EncodeToString(leaf[:]), "verified": verified, "receipt": string(rb)})
		return nil
	}
	_, err = e.stdout.Write(rb)
	return err
}
