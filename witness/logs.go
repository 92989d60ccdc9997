package witness

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

// MaxLogsFileSize caps the logs file a witness reads.
const MaxLogsFileSize = 1 << 20

// Log is one log a witness follows.
type Log struct {
	// Origin is the log's origin line, the name of its key.
	Origin string
	// VKey is the log's public note verifier key.
	VKey string
	// URL is the log's address, if the logs file gives one (informational).
	URL string
	// Verifier verifies the log's checkpoint signatures.
	Verifier note.Verifier
}

// Logs is the set of logs a witness follows, as read from a logs file. It is
// immutable once parsed; the witness swaps in a new one on reload.
type Logs struct {
	list     []Log
	byOrigin map[string][]note.Verifier
}

// ParseLogs parses a logs file: one "log <vkey> [url]" line per log key,
// where the key's name is the log's origin (the format of the log lines of
// a C2SP tlog-policy). Items are separated by spaces or tabs; blank lines
// and lines starting with "#" are ignored. A log may be listed with several
// keys (for a key rotation): a checkpoint signed by any of them is accepted.
// Errors name the line.
func ParseLogs(text []byte) (*Logs, error) {
	if len(text) > MaxLogsFileSize {
		return nil, fmt.Errorf("logs file is larger than %d bytes", MaxLogsFileSize)
	}
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("logs file is not valid UTF-8")
	}
	l := &Logs{byOrigin: make(map[string][]note.Verifier)}
	seen := make(map[string]int)
	for i, line := range bytes.Split(text, []byte("\n")) {
		n := i + 1
		s := strings.TrimSpace(string(line))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
		if f[0] != "log" {
			return nil, fmt.Errorf("line %d: unknown keyword %q, want \"log <vkey> [url]\"", n, f[0])
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want \"log <vkey> [url]\", got %d items", n, len(f))
		}
		v, err := checkpoint.NewVerifier(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if prev, ok := seen[f[1]]; ok {
			return nil, fmt.Errorf("line %d: key already listed on line %d", n, prev)
		}
		seen[f[1]] = n
		lg := Log{Origin: v.Name(), VKey: f[1], Verifier: v}
		if len(f) == 3 {
			u, err := url.Parse(f[2])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("line %d: %q is not an http(s) URL", n, f[2])
			}
			lg.URL = f[2]
		}
		l.list = append(l.list, lg)
		l.byOrigin[lg.Origin] = append(l.byOrigin[lg.Origin], v)
	}
	return l, nil
}

// List returns the logs in file order.
func (l *Logs) List() []Log {
	if l == nil {
		return nil
	}
	return append([]Log(nil), l.list...)
}

// Verifiers returns the keys trusted for origin, or nil for an unknown
// origin.
func (l *Logs) Verifiers(origin string) []note.Verifier {
	if l == nil {
		return nil
	}
	return l.byOrigin[origin]
}

// Origins returns the distinct origins, in file order.
func (l *Logs) Origins() []string {
	if l == nil {
		return nil
	}
	var out []string
	done := make(map[string]bool)
	for _, lg := range l.list {
		if !done[lg.Origin] {
			done[lg.Origin] = true
			out = append(out, lg.Origin)
		}
	}
	return out
}
