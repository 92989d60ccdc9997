package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/atomicfile"
)

const keygenHelp = `
Generates an Ed25519 note key pair. The signing key is written to --out
(created with mode 0600; an existing file is never overwritten) and the
verifier key (vkey) is printed on stdout and written to <out>.pub.

A log's key name must equal its checkpoint origin (e.g. example.com/log).
With --witness the key is a cosignature/v1 witness key; add --mldsa44 for
an ML-DSA-44 (post-quantum) witness key instead of Ed25519.`

func runKeygen(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "keygen", "--name NAME --out FILE [--witness [--mldsa44]]", keygenHelp)
	name := fs.String("name", "", "key name (for a log: its origin)")
	out := fs.String("out", "", "file to write the signing key to (mode 0600)")
	witness := fs.Bool("witness", false, "generate a witness (cosignature/v1) key instead of a log key")
	mldsa44 := fs.Bool("mldsa44", false, "with --witness: an ML-DSA-44 witness key (tlog-cosignature type 0x06)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *name == "" || *out == "" {
		return usagef("--name and --out are required")
	}
	if *mldsa44 && !*witness {
		return usagef("--mldsa44 needs --witness: log keys are Ed25519")
	}
	gen := checkpoint.GenerateKey
	switch {
	case *mldsa44:
		gen = checkpoint.GenerateMLDSACosignerKey
	case *witness:
		gen = checkpoint.GenerateCosignerKey
	}
	skey, vkey, err := gen(*name)
	if err != nil {
		return usagef("--name: %v", err)
	}
	// O_EXCL: never overwrite a key, which could destroy a log's identity.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return usagef("%s already exists; not overwriting a key", *out)
	}
	if err != nil {
		return fmt.Errorf("writing signing key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("writing signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing signing key: %w", err)
	}
	if err := atomicfile.WriteFile(*out+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing verifier key: %w", err)
	}
	e.result(map[string]any{"ok": true, "name": *name, "vkey": vkey, "signing_key_file": *out, "vkey_file": *out + ".pub"}, vkey)
	return nil
}
