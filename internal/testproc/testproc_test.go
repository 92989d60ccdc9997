package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// helper is testdata/helper, built by TestMain with Build.
var helper string

func TestMain(m *testing.M) {
	Main(m, func(dir string) { helper = filepath.Join(dir, "helper") }, "./testdata/helper")
}

func TestBuild(t *testing.T) {
	if _, err := os.Stat(helper); err != nil {
		t.Errorf("Build did not leave the binary where it said: %v", err)
	}
	dir := t.TempDir()
	if _, err := BuildInto(dir, "./testdata/no-such-package"); err == nil || !strings.Contains(err.Error(), "no-such-package") {
		t.Errorf("building a missing package: %v, want an error naming it", err)
	}
	for pkg, want := range map[string]string{
		".":                            "testproc",
		"./testdata/helper":            "helper",
		"../testproc/testdata/helper/": "helper",
		"github.com/evidentlog/evident/cmd/evident-server": "evident-server",
	} {
		if got, err := binaryName(pkg); err != nil || got != want {
			t.Errorf("binaryName(%q) = %q, %v; want %q", pkg, got, err, want)
		}
	}
}

// dial checks that something accepts connections at addr.
func dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatalf("%s does not listen: %v", addr, err)
	}
	c.Close()
}

// TestStart: the lines up to "listening" are collected, the URL serves,
// stderr is kept, and SIGTERM stops the process cleanly.
func TestStart(t *testing.T) {
	p := Start(t, helper)
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Errorf("URL %q", p.URL)
	}
	want := map[string]string{"origin": "example.com/helper", "vkey": "k", "listening": p.URL}
	if diff := cmp.Diff(want, p.Lines); diff != "" {
		t.Errorf("Lines (-want +got):\n%s", diff)
	}
	dial(t, p.URL)
	if p.Pid() <= 0 {
		t.Errorf("Pid %d", p.Pid())
	}
	if err := p.Stop(StartTimeout); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if got := p.Stderr(); got != "helper starting\nhelper stopping\n" {
		t.Errorf("Stderr %q", got)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Exited is open after Stop")
	}
	if err := p.Wait(); err != nil {
		t.Errorf("Wait after a clean stop: %v", err)
	}
	p.Kill() // a no-op now
}

// TestStartReadyOnStderr: readiness may depend on stderr.
func TestStartReadyOnStderr(t *testing.T) {
	addrRE := regexp.MustCompile(`serving addr=(\S+)`)
	p := StartReady(t, func(lines map[string]string, stderr string) bool {
		return lines["vkey"] != "" && addrRE.MatchString(stderr)
	}, helper, "--mode", "stderr")
	if p.URL != "" || p.Lines["vkey"] != "k" {
		t.Errorf("URL %q, Lines %v", p.URL, p.Lines)
	}
	m := addrRE.FindStringSubmatch(p.Stderr())
	if m == nil {
		t.Fatalf("stderr %q", p.Stderr())
	}
	dial(t, m[1])
}

// TestKillAndSignal: Kill ends the process at once; Stop gives up on a
// process that ignores SIGTERM and kills it; Signal delivers.
func TestKillAndSignal(t *testing.T) {
	p := Start(t, helper)
	p.Kill()
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after Kill: %v, want killed by SIGKILL", err)
	}

	p = Start(t, helper, "--mode", "stubborn")
	if err := p.Stop(100 * time.Millisecond); !errors.Is(err, ErrNotStopped) {
		t.Errorf("Stop of a process that ignores SIGTERM: %v, want ErrNotStopped", err)
	}
	if err := p.Wait(); err == nil {
		t.Error("the stubborn process exited cleanly")
	}

	p = Start(t, helper)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// fatalTB records the first Fatal and ends the goroutine, as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestStartFails: a process that exits before it is ready fails the test
// with its stderr; so does a binary that does not exist.
func TestStartFails(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		args []string
		want string
	}{
		{helper, []string{"--mode", "fail"}, "helper exited before it was ready (exit status 2):\nhelper: no such thing\n"},
		{filepath.Join(t.TempDir(), "missing"), nil, "no such file"},
	} {
		f := &fatalTB{TB: t}
		done := make(chan *Proc)
		go func() {
			defer close(done)
			done <- Start(f, tc.bin, tc.args...)
		}()
		if p := <-done; p != nil {
			t.Errorf("Start(%s %q) returned %v", tc.bin, tc.args, p)
		}
		if !strings.Contains(f.msg, tc.want) {
			t.Errorf("Start(%s %q) failed with %q, want %q", tc.bin, tc.args, f.msg, tc.want)
		}
	}
}

// TestNotImported: no package of the module imports this one outside its
// tests.
func TestNotImported(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/evidentlog/evident/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	const self = "github.com/evidentlog/evident/internal/testproc"
	for _, line := range strings.Split(string(out), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if strings.Contains(" "+imports+" ", " "+self+" ") {
			t.Errorf("%s imports %s, which is for tests only", pkg, self)
		}
	}
}

func TestFreePorts(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		base := FreePorts(t, 4)
		if base < 10000 || base+4 > low {
			t.Fatalf("FreePorts(4) = %d, want [10000, %d)", base, low-4)
		}
		var ls []net.Listener
		for i := range 4 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				t.Fatalf("port %d of FreePorts(4) = %d is not free: %v", i, base, err)
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
	}
}
