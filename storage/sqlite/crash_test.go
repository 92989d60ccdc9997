package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
)

// The crash child is this test binary run again with these variables set.
const (
	crashChildEnv   = "EVIDENT_SQLITE_CRASH_CHILD" // database path
	crashJournalEnv = "EVIDENT_SQLITE_CRASH_JOURNAL"
	crashBrokenEnv  = "EVIDENT_SQLITE_CRASH_BROKEN"    // "1": answer before commit
	crashIntegEnv   = "EVIDENT_SQLITE_CRASH_INTEGRATE" // "1": integrate in the group commit too
	crashSeedEnv    = "EVIDENT_SQLITE_CRASH_SEED"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// crashChild queues leaves (appends them, to a PREORDERED_LOG tree) from 16
// goroutines while a sequencer integrates them, and appends to the journal every leaf whose QueueLeaves returned
// success ("leaf <identity hash>") and every tree size a committed
// sequencer run reached ("size <n>"), until it is killed.
func crashChild(path string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 3
	}
	ctx := context.Background()
	// Merges of the identity index every few hundred leaves, so that
	// kills land in them and the checks meet both of its parts.
	cfg := Config{identityMergeRows: 300, identityMergeChunk: 64}
	if os.Getenv(crashBrokenEnv) == "1" {
		cfg.ackBeforeCommit = 30 * time.Millisecond
	}
	s, err := Open(ctx, path, cfg)
	if err != nil {
		return fail(err)
	}
	journal, err := os.OpenFile(os.Getenv(crashJournalEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	var jmu sync.Mutex
	record := func(line string) {
		jmu.Lock()
		defer jmu.Unlock()
		if _, err := journal.WriteString(line + "\n"); err != nil { // one write(2) per line
			panic(err)
		}
	}
	ids, err := s.LogStorage().GetActiveLogIDs(ctx)
	if err != nil || len(ids) != 1 {
		return fail(fmt.Errorf("GetActiveLogIDs = %v, %v", ids, err))
	}
	tree, err := storage.GetTree(ctx, s.AdminStorage(), ids[0])
	if err != nil {
		return fail(err)
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	ls := s.LogStorage()
	log.InitMetrics(nil)
	if os.Getenv(crashIntegEnv) == "1" {
		// The group commit integrates what it appends (and records the
		// size once durable), racing the loop below for the rest.
		s.SetIntegrator(tree.TreeId, Integrator{Integrate: func(ctx context.Context, tree *trillian.Tree, ls storage.LogStorage) (func(), error) {
			if _, err := log.IntegrateBatch(ctx, tree, 300, 0, 0, clock.System, ls, quota.Noop()); err != nil {
				return nil, err
			}
			return func() {
				size, err := treeSize(ctx, s.LogStorage(), tree)
				if err != nil {
					fmt.Fprintln(os.Stderr, "crash child: reading size:", err)
					os.Exit(4)
				}
				record(fmt.Sprintf("size %d", size))
			}, nil
		}})
	}
	go func() {
		for {
			if _, err := log.IntegrateBatch(ctx, tree, 300, 0, 0, clock.System, ls, quota.Noop()); err != nil {
				fmt.Fprintln(os.Stderr, "crash child: IntegrateBatch:", err)
				os.Exit(4)
			}
			size, err := treeSize(ctx, ls, tree)
			if err != nil {
				fmt.Fprintln(os.Stderr, "crash child: reading size:", err)
				os.Exit(4)
			}
			record(fmt.Sprintf("size %d", size))
			time.Sleep(time.Millisecond)
		}
	}()
	for g := uint64(0); g < 16; g++ {
		go func() {
			for n := uint64(0); ; n++ {
				leaf := newLeaf(seed, g<<32|n)
				write := ls.QueueLeaves
				if tree.TreeType == trillian.TreeType_PREORDERED_LOG {
					write = s.AppendLeaves
				}
				if _, err := write(ctx, tree, []*trillian.LogLeaf{leaf}, time.Now()); err != nil {
					fmt.Fprintln(os.Stderr, "crash child: writing a leaf:", err)
					os.Exit(4)
				}
				record("leaf " + hex.EncodeToString(leaf.LeafIdentityHash))
			}
		}()
	}
	fmt.Println("ready")
	select {} // until killed
}

// rewriteAcked writes about 100 of the acknowledged identity hashes again,
// each with a new value, and reports those not answered as duplicates.
func rewriteAcked(ctx context.Context, s *Storage, tree *trillian.Tree, acked [][]byte) string {
	var leaves []*trillian.LogLeaf
	for i := 0; i < len(acked); i += max(1, len(acked)/100) {
		l := newLeaf(1<<63, uint64(i))
		l.LeafIdentityHash = acked[i]
		leaves = append(leaves, l)
	}
	if len(leaves) == 0 {
		return ""
	}
	write := s.LogStorage().QueueLeaves
	if tree.TreeType == trillian.TreeType_PREORDERED_LOG {
		write = s.AppendLeaves
	}
	res, err := write(ctx, tree, leaves, time.Now())
	if err != nil {
		return fmt.Sprintf("writing acknowledged leaves again: %v", err)
	}
	fresh := 0
	for _, r := range res {
		if r.GetStatus().GetCode() != int32(codes.AlreadyExists) {
			fresh++
		}
	}
	if fresh > 0 {
		return fmt.Sprintf("%d of %d acknowledged identity hashes written again were not duplicates", fresh, len(leaves))
	}
	return ""
}

// treeSize reads the size of the tree's latest signed root.
func treeSize(ctx context.Context, ls storage.LogStorage, tree *trillian.Tree) (uint64, error) {
	lr, err := latestRoot(ctx, ls, tree)
	return lr.TreeSize, err
}

// latestRoot reads the tree's latest signed root.
func latestRoot(ctx context.Context, ls storage.LogStorage, tree *trillian.Tree) (types.LogRootV1, error) {
	var lr types.LogRootV1
	tx, err := ls.SnapshotForTree(ctx, tree)
	if err != nil {
		return lr, err
	}
	defer tx.Close()
	slr, err := tx.LatestSignedLogRoot(ctx)
	if err != nil {
		return lr, err
	}
	if err := lr.UnmarshalBinary(slr.LogRoot); err != nil {
		return lr, err
	}
	return lr, tx.Commit(ctx)
}

// runCrashCycles runs the child cycles times, killing it with SIGKILL at a
// random moment, and checks the file after each kill. It returns the
// problems found.
func runCrashCycles(t *testing.T, cycles int, broken, integrate bool, proto *trillian.Tree) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "trillian.db")
	journal := filepath.Join(dir, "journal")
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tree := initializedTree(t, s, proto)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var problems []string
	var lastSize uint64
	for c := 0; c < cycles; c++ {
		delay := time.Duration(50+rng.IntN(350)) * time.Millisecond
		stderr := runAndKill(t, path, journal, broken, integrate, c, delay)
		size, probs := checkCrashState(t, path, journal, tree, lastSize)
		for _, p := range probs {
			problems = append(problems, fmt.Sprintf("cycle %d (killed after %v): %s", c, delay, p))
		}
		if len(probs) > 0 && stderr != "" {
			t.Logf("cycle %d child stderr:\n%s", c, lastLines(stderr, 10))
		}
		t.Logf("cycle %d: killed after %v, tree size %d, %d problems", c, delay, size, len(probs))
		lastSize = max(lastSize, size)
	}
	return problems
}

// runAndKill starts the child, waits until it is running, lets it work for
// delay and kills it with SIGKILL. It returns the child's stderr.
func runAndKill(t *testing.T, path, journal string, broken, integrate bool, cycle int, delay time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+path,
		crashJournalEnv+"="+journal,
		crashSeedEnv+"="+strconv.Itoa(cycle+1),
	)
	if broken {
		cmd.Env = append(cmd.Env, crashBrokenEnv+"=1")
	}
	if integrate {
		cmd.Env = append(cmd.Env, crashIntegEnv+"=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not start: %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	go io.Copy(io.Discard, out)
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by %v, not by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	return stderr.String()
}

// checkCrashState reopens the file after a kill and checks that every
// acknowledged leaf is stored (queued or sequenced), that the root
// recomputed from the sequenced leaves equals the stored root, and that the
// tree size did not go backwards (from the last check, nor from any size a
// committed sequencer run reported). It returns the stored size.
func checkCrashState(t *testing.T, path, journal string, tree *trillian.Tree, lastSize uint64) (uint64, []string) {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, path, Config{})
	if err != nil {
		return 0, []string{fmt.Sprintf("reopen: %v", err)}
	}
	defer s.Close()
	var problems []string
	acked, maxSize, err := readJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	// Queued or sequenced, each leaf is in leaf_data once, and the
	// identity index (the table and the part rebuilt in memory) finds it.
	stored := make(map[string]int)
	rows, err := s.rdb.QueryContext(ctx, `SELECT leaf_identity_hash FROM leaf_data WHERE tree_id = ?`, tree.TreeId)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[string(id)]++
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	reads := newStmtConn(s.rdb.PrepareContext)
	defer reads.close()
	lost, unindexed := 0, 0
	for _, id := range acked {
		if stored[string(id)] != 1 {
			lost++
		}
		if _, ok, err := s.storedLeaf(ctx, reads, false, tree.TreeId, id); err != nil {
			t.Fatal(err)
		} else if !ok {
			unindexed++
		}
	}
	if lost > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d acknowledged leaves lost", lost, len(acked)))
	}
	if unindexed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d acknowledged leaves missing from the identity index", unindexed, len(acked)))
	}
	// Writing a sample of them again gives duplicates, whether the crash
	// left them in the table part of the identity index or in the part
	// rebuilt in memory.
	if p := rewriteAcked(ctx, s, tree, acked); p != "" {
		problems = append(problems, p)
	}
	size, err := treeSize(ctx, s.LogStorage(), tree)
	if err != nil {
		return 0, append(problems, fmt.Sprintf("reading root: %v", err))
	}
	if size < lastSize || size < maxSize {
		problems = append(problems, fmt.Sprintf("tree size went back to %d (was %d, acknowledged %d)", size, lastSize, maxSize))
	}
	if p := checkRoot(ctx, s, tree); p != "" {
		problems = append(problems, p)
	}
	// Sequenced positions have no gap: integration would stop at one.
	var count, end int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*), COALESCE(max(sequence_number) + 1, 0) FROM leaf_data
		WHERE tree_id = ? AND sequence_number IS NOT NULL`, tree.TreeId).Scan(&count, &end); err != nil {
		t.Fatal(err)
	}
	if count != end {
		problems = append(problems, fmt.Sprintf("%d sequenced leaves at positions up to %d: a gap", count, end))
	}
	return size, problems
}

// readJournal returns the acknowledged identity hashes and the largest
// acknowledged tree size. A last line cut by the kill is ignored.
func readJournal(path string) ([][]byte, uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, 0, err
	}
	var ids [][]byte
	var maxSize uint64
	lines := strings.Split(string(b), "\n")
	for _, line := range lines[:len(lines)-1] { // the part after the last \n is incomplete
		kind, val, _ := strings.Cut(line, " ")
		switch kind {
		case "leaf":
			id, err := hex.DecodeString(val)
			if err != nil {
				return nil, 0, fmt.Errorf("journal line %q: %v", line, err)
			}
			ids = append(ids, id)
		case "size":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("journal line %q: %v", line, err)
			}
			maxSize = max(maxSize, n)
		default:
			return nil, 0, fmt.Errorf("journal line %q", line)
		}
	}
	return ids, maxSize, nil
}

// checkRoot recomputes the root from every sequenced leaf (hashing its
// value) and compares it with the stored root; it returns a problem or "".
func checkRoot(ctx context.Context, s *Storage, tree *trillian.Tree) string {
	tx, err := s.LogStorage().SnapshotForTree(ctx, tree)
	if err != nil {
		return fmt.Sprintf("snapshot: %v", err)
	}
	defer tx.Close()
	slr, err := tx.LatestSignedLogRoot(ctx)
	if err != nil {
		return fmt.Sprintf("root: %v", err)
	}
	var lr types.LogRootV1
	if err := lr.UnmarshalBinary(slr.LogRoot); err != nil {
		return fmt.Sprintf("root: %v", err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for start := uint64(0); start < lr.TreeSize; {
		// A PREORDERED_LOG tree's range may reach past its size.
		leaves, err := tx.GetLeavesByRange(ctx, int64(start), int64(min(10000, lr.TreeSize-start)))
		if err != nil {
			return fmt.Sprintf("GetLeavesByRange(%d): %v", start, err)
		}
		for _, l := range leaves {
			h := rfc6962.DefaultHasher.HashLeaf(l.LeafValue)
			if !bytes.Equal(h, l.MerkleLeafHash) {
				return fmt.Sprintf("leaf %d: stored Merkle hash differs from its value's", l.LeafIndex)
			}
			if err := cr.Append(h, nil); err != nil {
				return err.Error()
			}
		}
		start += uint64(len(leaves))
	}
	// Appended leaves wait beyond the size of a PREORDERED_LOG tree; a LOG
	// tree's leaves are sequenced only in the transaction that grows it.
	var extra int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM leaf_data WHERE tree_id = ? AND sequence_number >= ?",
		tree.TreeId, lr.TreeSize).Scan(&extra); err != nil {
		return err.Error()
	}
	if extra != 0 && tree.TreeType == trillian.TreeType_LOG {
		return fmt.Sprintf("%d sequenced leaves beyond tree size %d", extra, lr.TreeSize)
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if lr.TreeSize > 0 {
		if root, err = cr.GetRootHash(nil); err != nil {
			return err.Error()
		}
	}
	if !bytes.Equal(root, lr.RootHash) {
		return fmt.Sprintf("stored root %x of size %d, recomputed %x", lr.RootHash, lr.TreeSize, root)
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCrashSIGKILL kills a child that queues and sequences leaves at random
// moments, 20 times, and checks after each kill that no acknowledged leaf
// was lost, that the stored root matches the stored leaves and that the
// tree never shrank.
func TestCrashSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proto     *trillian.Tree
		integrate bool
	}{
		{"queue", stestonly.LogTree, false},
		{"append", stestonly.PreorderedLogTree, false},
		{"append-integrate", stestonly.PreorderedLogTree, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if problems := runCrashCycles(t, 12, false, tc.integrate, tc.proto); len(problems) > 0 {
				t.Errorf("crash checks failed:\n%s", strings.Join(problems, "\n"))
			}
		})
	}
}

// TestCrashCheckerCatchesEarlyAck runs the same cycles against a
// deliberately broken group commit that answers callers before it commits,
// and requires the checker to notice lost leaves: this is what makes the
// "nothing lost" of TestCrashSIGKILL mean something.
func TestCrashCheckerCatchesEarlyAck(t *testing.T) {
	problems := runCrashCycles(t, 5, true, false, stestonly.PreorderedLogTree)
	for _, p := range problems {
		if strings.Contains(p, "acknowledged leaves lost") {
			t.Logf("caught as expected: %s", p)
			return
		}
	}
	t.Errorf("the checker found no lost leaf in the broken variant; problems: %q", problems)
}
