package event_test

import (
	"fmt"
	"time"

	"github.com/evidentlog/evident/event"
)

func ExampleCanonicalize() {
	c, err := event.Canonicalize([]byte(`{"b": [1E3, 0.50, "\u00e9"], "a": {"y": null, "x": true}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(c))
	// Output: {"a":{"x":true,"y":null},"b":[1000,0.5,"é"]}
}

func ExampleRequest_Entry() {
	r, err := event.ParseRequest([]byte(`{"type": "payment.sent", "actor": "erp", "subject": "invoice/4711",
		"occurred_at": "2026-12-04T10:00:00+01:00", "data": {"amount": 1250, "currency": "EUR"}}`))
	if err != nil {
		panic(err)
	}
	entry, _, err := r.Entry(time.Date(2026, 12, 4, 9, 0, 1, 0, time.UTC), [32]byte{})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(entry))
	// Output: {"actor":"erp","data":{"amount":1250,"currency":"EUR"},"format":"evident-event/v1","occurred_at":"2026-12-04T09:00:00Z","received_at":"2026-12-04T09:00:01Z","subject":"invoice/4711","type":"payment.sent"}
}

func ExampleVerifyCommitment() {
	salt := [event.SaltSize]byte{1, 2, 3} // use event.NewSalt()
	data := []byte(`{"name":"Erika Mustermann","score":712}`)
	c := event.Commit(salt, data)
	fmt.Println(event.VerifyCommitment(c, salt, []byte(`{"score": 712, "name": "Erika Mustermann"}`)))
	fmt.Println(event.VerifyCommitment(c, salt, []byte(`{"score": 713, "name": "Erika Mustermann"}`)))
	// Output:
	// <nil>
	// data and salt do not match the commitment
}
