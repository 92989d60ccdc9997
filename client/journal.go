package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// JournalRecord is one line of a receipts journal: the receipt of the entry
// submitted from one input line.
type JournalRecord struct {
	// Line is the 1-based number of the input line the entry came from.
	Line int `json:"line"`
	// Index is the entry's index in the log.
	Index uint64 `json:"index"`
	// LeafHash is the entry's RFC 6962 leaf hash, 64 hex digits.
	LeafHash string `json:"leaf_hash"`
	// Duplicate is set when the log already held the entry.
	Duplicate bool `json:"duplicate"`
	// Receipt is the entry's receipt (a tlog-proof), verbatim.
	Receipt string `json:"receipt"`
}

// journalSyncEvery is how many records Journal.Append writes at most
// before it syncs the file.
const journalSyncEvery = 100

// maxJournalRecord caps one line of a receipts journal: a record holds a
// receipt of at most checkpoint.MaxNoteSize bytes, JSON-escaped.
const maxJournalRecord = 1 << 20

// ReadJournal reads the receipts journal at path and returns, for each
// input line that has a record, the entry's leaf hash (hex). It reads the
// file as a stream, one record at a time. A missing file is an empty
// journal. A last record cut short by an interruption is removed from the
// file, so that appending continues on a record boundary. A record that
// does not parse, is longer than 1 MiB, or is a second record for one line
// is an error.
func ReadJournal(path string) (map[int]string, error) {
	done := make(map[int]string)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var complete int64 // bytes up to the end of the last complete record
	for n := 1; ; n++ {
		l, err := readRecord(br)
		if err == io.EOF {
			if len(l) > 0 {
				// An interrupted write left a partial record: drop it.
				if err := os.Truncate(path, complete); err != nil {
					return nil, err
				}
			}
			return done, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		complete += int64(len(l))
		l = bytes.TrimSuffix(l, []byte("\n"))
		if len(l) == 0 {
			continue
		}
		var r JournalRecord
		if err := json.Unmarshal(l, &r); err != nil || r.Line < 1 || len(r.LeafHash) != 64 {
			return nil, fmt.Errorf("%s line %d is not a receipt record", path, n)
		}
		if _, dup := done[r.Line]; dup {
			return nil, fmt.Errorf("%s has two records for input line %d", path, r.Line)
		}
		done[r.Line] = r.LeafHash
	}
}

// readRecord returns the next line of br with its "\n". At the end of the
// input it returns what is left (a partial record, or nothing) and io.EOF.
func readRecord(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxJournalRecord {
			return nil, fmt.Errorf("record longer than %d bytes", maxJournalRecord)
		}
		line = append(line, chunk...)
		switch err {
		case nil:
			return line, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return line, err
		}
	}
}

// Journal appends records to a receipts journal: one JSON object per line,
// each written whole by one write, and synced to disk at least every 100
// records and on Sync and Close. Read it back with ReadJournal (first, to
// drop a record cut short). A Journal is not safe for concurrent use.
type Journal struct {
	f        *os.File
	unsynced int
}

// OpenJournal opens (creating it if needed) the journal at path for
// appending.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &Journal{f: f}, nil
}

// Append writes r as one line with one write, and syncs the file when 100
// records are not yet synced.
func (j *Journal) Append(r JournalRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return err
	}
	j.unsynced++
	if j.unsynced >= journalSyncEvery {
		return j.Sync()
	}
	return nil
}

// Sync syncs the records appended since the last sync, if any.
func (j *Journal) Sync() error {
	if j.unsynced == 0 {
		return nil
	}
	j.unsynced = 0
	return j.f.Sync()
}

// Close closes the file. It does not sync: call Sync first to keep the
// records appended since the last sync across a crash.
func (j *Journal) Close() error { return j.f.Close() }
