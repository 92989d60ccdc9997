package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
)

// Submit an entry, then verify its receipt offline with the log's key
// (obtained from a trusted source, not from the log).
func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{URL: "http://127.0.0.1:8080", Token: "write-token"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	entry := []byte(`{"approval":"change 7781","by":"cab"}`)
	added, err := c.AddEntry(ctx, entry)
	if err != nil {
		log.Fatal(err) // *client.HTTPError carries the status and the server's message
	}
	logKey, err := checkpoint.NewVerifier("example.com/log+1a2b3c4d+AbC...")
	if err != nil {
		log.Fatal(err)
	}
	r, err := checkpoint.ParseReceipt(added.Receipt)
	if err != nil {
		log.Fatal(err)
	}
	signed, err := checkpoint.VerifyReceipt(r, entry, logKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("entry", added.Index, "is in", signed.Origin, "at tree size", signed.Size)
}
