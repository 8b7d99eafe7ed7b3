package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/handler/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

func readPid(path string) int {
	data, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// TestSupervisor drives the supervisor with the fake agent: crash ⇒
// restart after back-off; Restart ⇒ a new process at once; SIGHUP is
// forwarded; cancel ⇒ the agent stops and the pidfile goes.
func TestSupervisor(t *testing.T) {
	agent, err := testbin.Build(testbin.FakeAgent, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"stateDir":"`+state+`","logDir":"`+dir+`/log","bpffsDir":"`+dir+`/bpf"}`), 0o600)
	pidFile := filepath.Join(dir, "agent.pid")
	log := logrus.New()
	log.SetOutput(testWriter{t})
	s := New(Supervisor{
		Command: []string{agent, "--config", cfg}, PidFile: pidFile, Log: log,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, StopTimeout: 2 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Running means the agent itself got going: it writes its own pidfile
	// after recording the start.
	agentRunning := func(pid int) bool {
		_, ok := Find(pidFile, agent)
		return ok && readPid(pidFile) == pid && readPid(filepath.Join(state, "fake-agent.pid")) == pid
	}
	testbin.WaitFor(t, "first start", func() bool { return readPid(pidFile) > 0 && agentRunning(readPid(pidFile)) })
	first := readPid(pidFile)

	syscall.Kill(first, syscall.SIGKILL)
	testbin.WaitFor(t, "restart after a crash", func() bool { p := readPid(pidFile); return p != first && p > 0 && agentRunning(p) })
	second := readPid(pidFile)

	s.Restart()
	testbin.WaitFor(t, "restart on request", func() bool { p := readPid(pidFile); return p != second && p > 0 && agentRunning(p) })
	third := readPid(pidFile)
	if alive(second, agent) {
		t.Fatal("the old agent still runs after a restart")
	}

	os.WriteFile(cfg, []byte(`{"stateDir":"`+state+`","logDir":"`+dir+`/log","bpffsDir":"`+dir+`/bpf","logLevel":"debug"}`), 0o600)
	s.Signal(syscall.SIGHUP)
	testbin.WaitFor(t, "reload on SIGHUP", func() bool {
		seen, _ := os.ReadFile(filepath.Join(state, "fake-config.json"))
		return strings.Contains(string(seen), "debug")
	})
	if readPid(pidFile) != third {
		t.Fatal("SIGHUP restarted the agent")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if alive(third, agent) {
		t.Fatal("the agent outlived the supervisor")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatal("pidfile left behind")
	}
	starts, _ := os.ReadFile(filepath.Join(state, "fake-starts"))
	if n := strings.Count(string(starts), "\n"); n != 3 {
		t.Fatalf("agent started %d times; want 3", n)
	}
}

// TestSupervisorRunsAgainOnExit75: exit 75 (the agent's "configuration
// changed, run me again") restarts at once, never after the crash
// back-off; any other exit waits for it.
func TestSupervisorRunsAgainOnExit75(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       int
		wantStarts int // within the first back-off
	}{
		{"exit 75 restarts at once", 75, 3},
		{"a crash waits for the back-off", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			starts := filepath.Join(dir, "starts")
			script := "echo x >> " + starts + "; [ $(wc -l < " + starts + ") -lt 3 ] && exit " + strconv.Itoa(tc.code) + "; exec sleep 30"
			s := New(Supervisor{
				Command: []string{"/bin/sh", "-c", script}, PidFile: filepath.Join(dir, "pid"), Log: logrus.New(),
				MinBackoff: 3 * time.Second, MaxBackoff: 3 * time.Second, StopTimeout: time.Second,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			time.Sleep(1500 * time.Millisecond) // half the back-off
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(starts)
			if n := strings.Count(string(data), "\n"); n != tc.wantStarts {
				t.Fatalf("%d starts within half the back-off; want %d", n, tc.wantStarts)
			}
		})
	}
}

func TestSupervisorMissingBinary(t *testing.T) {
	s := New(Supervisor{Command: []string{filepath.Join(t.TempDir(), "none")}, PidFile: filepath.Join(t.TempDir(), "p")})
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "agent binary") {
		t.Fatalf("got %v", err)
	}
}

func TestSpawnFindStop(t *testing.T) {
	dir := t.TempDir()
	pidFile, logFile := filepath.Join(dir, "run", "p.pid"), filepath.Join(dir, "log", "x.log")
	pid, err := Spawn("/bin/sh", []string{"-c", "trap '' TERM; echo started; sleep 5; : marker-x"}, nil, logFile, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := Find(pidFile, "marker-x"); !ok || got != pid {
		t.Fatalf("Find = %d, %v; want %d", got, ok, pid)
	}
	if _, ok := Find(pidFile, "other-marker"); ok {
		t.Fatal("Find matched a process whose command line lacks the marker")
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Fatalf("session %d; want a session of its own (%d)", sid, pid)
	}
	testbin.WaitFor(t, "the trap", func() bool { data, _ := os.ReadFile(logFile); return strings.Contains(string(data), "started") })
	start := time.Now()
	if err := Stop(pidFile, "marker-x", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("a process ignoring SIGTERM was not given its time")
	}
	if _, ok := Find(pidFile, "marker-x"); ok {
		t.Fatal("still running after Stop")
	}
	if err := Stop(pidFile, "marker-x", time.Second); err != nil {
		t.Fatalf("stopping a stopped process: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
