package checkpoint_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"strings"

	"github.com/evidentlog/evident/checkpoint"
)

func ExampleSign() {
	skey, vkey, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		log.Fatal(err)
	}
	signer, err := checkpoint.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	c := checkpoint.Checkpoint{
		Origin: "example.com/log",
		Size:   1,
		Hash:   checkpoint.LeafHash([]byte("hello")), // a one-leaf tree's root is its leaf hash
	}
	signed, err := checkpoint.Sign(c, signer)
	if err != nil {
		log.Fatal(err)
	}
	body, sigs, err := checkpoint.SplitNote(signed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(body))
	fmt.Println(len(sigs), "signature by", strings.Fields(string(sigs[0]))[1])

	verifier, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		log.Fatal(err)
	}
	s, err := checkpoint.Open(signed, verifier)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", s.Origin, s.Size)
	// Output:
	// example.com/log
	// 1
	// iipcm3aIJ95alVLDigRMZpWcaPbS8htSYK9U0vh9uCc=
	// 1 signature by example.com/log
	// verified: example.com/log 1
}

func ExampleVerifyReceipt() {
	// The log.
	logSKey, logVKey, _ := checkpoint.GenerateKey("example.com/log")
	logSigner, _ := checkpoint.NewSigner(logSKey)
	// A witness.
	wSKey, wVKey, _ := checkpoint.GenerateCosignerKey("witness.example")
	cosigner, _ := checkpoint.NewCosigner(wSKey)

	// A tree of two entries: root = SHA-256(0x01 || leaf0 || leaf1).
	l0, l1 := checkpoint.LeafHash([]byte("entry 0")), checkpoint.LeafHash([]byte("entry 1"))
	c := checkpoint.Checkpoint{Origin: "example.com/log", Size: 2,
		Hash: sha256.Sum256(append(append([]byte{1}, l0[:]...), l1[:]...))}
	note, _ := checkpoint.Sign(c, logSigner)
	cosig, _ := checkpoint.SignatureLine(c.Marshal(), cosigner)
	note, _ = checkpoint.AppendSignatures(note, cosig)

	// The receipt for entry 1: its inclusion path is the sibling leaf hash.
	receipt := (&checkpoint.Receipt{Index: 1, Proof: [][]byte{l0[:]}, Checkpoint: note}).Marshal()

	// An auditor, offline, with the log key and a policy.
	r, err := checkpoint.ParseReceipt(receipt)
	if err != nil {
		log.Fatal(err)
	}
	logKey, _ := checkpoint.NewVerifier(logVKey)
	policy, err := checkpoint.ParsePolicy([]byte("witness w1 " + wVKey + "\nquorum w1\n"))
	if err != nil {
		log.Fatal(err)
	}
	s, err := checkpoint.VerifyReceipt(r, []byte("entry 1"), logKey, policy)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index", r.Index, "in tree of size", s.Size, "of", s.Origin, "cosigned by", policy.Cosigners(s))

	_, err = checkpoint.VerifyReceipt(r, []byte("entry 2"), logKey, policy)
	fmt.Println(err != nil)
	// Output:
	// index 1 in tree of size 2 of example.com/log cosigned by [w1]
	// true
}
