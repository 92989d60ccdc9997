package witness_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/witness"
)

// A log operator's wiring: read the witness policy, make a Pool, and hand
// its Cosign and StatusText to the log (log.Config.Cosign and
// log.Config.CosignStatus).
func ExampleNewPool() {
	text, err := os.ReadFile("witness-policy.txt")
	if err != nil {
		log.Fatal(err)
	}
	policy, err := checkpoint.ParsePolicy(text)
	if err != nil {
		log.Fatal(err)
	}
	pool, err := witness.NewPool(witness.PoolConfig{Policy: policy})
	if err != nil {
		log.Fatal(err)
	}
	var cosign func(ctx context.Context, signed []byte, proof func(context.Context, uint64) ([][]byte, error)) ([]byte, error) = pool.Cosign
	_ = cosign
	fmt.Print(pool.StatusText())
}
