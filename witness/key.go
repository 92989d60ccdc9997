package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/evidentlog/evident/checkpoint"
)

// Key file names in a witness's data directory.
const (
	KeyFile  = "witness.key"  // private cosignature signer key, mode 0600
	VKeyFile = "witness.vkey" // public verifier key, one line
)

// ErrNoKeyName is returned by LoadOrCreateKey when dir holds no key yet and
// no name was given to create one: the caller must name the witness.
var ErrNoKeyName = errors.New("no witness key yet, and no name to create one")

// LoadOrCreateKey returns the witness key kept in dir, creating it (named
// name) if dir holds none (ErrNoKeyName if name is empty). It returns the private signer key, the public
// verifier key and whether it created them. An existing key whose name is
// not name (when name is not empty) or whose file is readable by others is
// refused.
func LoadOrCreateKey(dir, name string) (skey, vkey string, created bool, err error) {
	return LoadOrCreateKeyOfType(dir, name, KeyEd25519)
}

// KeyType is the kind of key a witness cosigns with.
type KeyType string

// Key types (C2SP tlog-cosignature).
const (
	// KeyEd25519 cosigns with Ed25519 (cosignature/v1, type 0x04).
	KeyEd25519 KeyType = "ed25519"
	// KeyMLDSA44 cosigns with ML-DSA-44 (type 0x06): post-quantum, larger
	// signatures (2.4 kB), committing to the witness's name.
	KeyMLDSA44 KeyType = "mldsa44"
)

// LoadOrCreateKeyOfType is LoadOrCreateKey that creates a key of type kt
// (KeyEd25519 or KeyMLDSA44) if dir holds none. An existing key is used
// whatever its type.
func LoadOrCreateKeyOfType(dir, name string, kt KeyType) (skey, vkey string, created bool, err error) {
	if kt != KeyEd25519 && kt != KeyMLDSA44 {
		return "", "", false, fmt.Errorf("unknown witness key type %q (want %s or %s)", kt, KeyEd25519, KeyMLDSA44)
	}
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createKey(dir, name, kt)
	case err != nil:
		return "", "", false, fmt.Errorf("reading witness key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", false, fmt.Errorf("reading witness key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", "", false, fmt.Errorf("witness key %s has mode %v: it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	skey = strings.TrimSpace(string(b))
	vkey, err = cosignerVKey(skey)
	if err != nil {
		return "", "", false, fmt.Errorf("witness key %s: %w", path, err)
	}
	if keyName := strings.SplitN(vkey, "+", 2)[0]; name != "" && keyName != name {
		return "", "", false, fmt.Errorf("witness key %s is named %q, not %q", path, keyName, name)
	}
	return skey, vkey, false, nil
}

func createKey(dir, name string, kt KeyType) (skey, vkey string, created bool, err error) {
	if name == "" {
		return "", "", false, fmt.Errorf("%s: %w", filepath.Join(dir, KeyFile), ErrNoKeyName)
	}
	generate := checkpoint.GenerateCosignerKey
	if kt == KeyMLDSA44 {
		generate = checkpoint.GenerateMLDSACosignerKey
	}
	skey, vkey, err = generate(name)
	if err != nil {
		return "", "", false, err
	}
	// O_EXCL: never overwrite a key that appeared meanwhile.
	f, err := os.OpenFile(filepath.Join(dir, KeyFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", false, fmt.Errorf("creating witness key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", "", false, fmt.Errorf("writing witness key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", "", false, fmt.Errorf("writing witness key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", false, fmt.Errorf("writing witness key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, VKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return "", "", false, fmt.Errorf("writing witness verifier key: %w", err)
	}
	return skey, vkey, true, nil
}

// cosignerVKey derives the cosignature verifier key of a signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>": Ed25519 (0x04, or 0x01
// used as a cosignature key) or ML-DSA-44 (0x06).
func cosignerVKey(skey string) (string, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return "", fmt.Errorf("not a private note key: %w", checkpoint.ErrMalformed)
	}
	// Key names cannot contain "+"; the base64 key material can.
	f := strings.SplitN(rest, "+", 3)
	if len(f) != 3 {
		return "", fmt.Errorf("private key is not name+id+key: %w", checkpoint.ErrMalformed)
	}
	name, hash, b64 := f[0], f[1], f[2]
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err == nil && len(raw) > 0 && raw[0] == 0x06 {
		vkey, err := checkpoint.MLDSAVerifierKey(skey)
		if err != nil {
			// Not err's detail beyond its kind: never quote key bytes.
			return "", fmt.Errorf("private key is not a valid ML-DSA-44 key: %w", checkpoint.ErrMalformed)
		}
		return vkey, nil
	}
	if err != nil || len(raw) != 1+ed25519.SeedSize || (raw[0] != 0x04 && raw[0] != 0x01) {
		return "", fmt.Errorf("private key is not an Ed25519 key: %w", checkpoint.ErrMalformed)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	pk := append([]byte{0x04}, pub...)
	// SPEC(signed-note): key ID = first 4 bytes of SHA-256(name || "\n" || alg || key).
	h := sha256.Sum256(append([]byte(name+"\n"), pk...))
	id := binary.BigEndian.Uint32(h[:4])
	if raw[0] == 0x04 {
		if got, err := strconv.ParseUint(hash, 16, 32); err != nil || uint32(got) != id || len(hash) != 8 {
			return "", fmt.Errorf("private key ID %s does not match the key: %w", hash, checkpoint.ErrMalformed)
		}
	}
	return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(pk)), nil
}
