package monitor

import (
	"strconv"
	"testing"

	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/testlog"
)

// addEntries appends n entries named from "entry <from>" and publishes once.
func addEntries(l *testlog.Log, from, n int) {
	es := make([][]byte, 0, n)
	for i := from; i < from+n; i++ {
		es = append(es, []byte("entry "+strconv.Itoa(i)))
	}
	l.Add(es...)
}

// logClient returns a client of the log, closed when the test ends.
func logClient(t testing.TB, l *testlog.Log) *client.Client {
	t.Helper()
	c, err := client.New(t.Context(), client.Config{URL: l.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
