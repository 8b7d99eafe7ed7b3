package keykeeper

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/control"
)

// host is a loopback host emulator with its control API client.
type host struct {
	*hostsim.Emulator
	ctl *control.Client
}

func startHost(t testing.TB) *host {
	t.Helper()
	e, err := hostsim.Start(hostsim.Config{
		IMDSAddr: "127.0.0.1:0", WireServerAddr: "127.0.0.1:0", HostGAAddr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &host{Emulator: e, ctl: control.New(e.Addrs().Control, nil)}
}

func (h *host) set(t testing.TB, p hostsim.Patch) {
	t.Helper()
	if _, err := h.ctl.SetState(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func (h *host) fault(t testing.TB, f hostsim.Fault) {
	t.Helper()
	f.Endpoint = "wireserver"
	if _, err := h.ctl.SetFault(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

// records returns the emulator's verification records of a method and
// lower-case path prefix.
func (h *host) records(t testing.TB, method, prefix string) []hostsim.Record {
	t.Helper()
	all, err := h.ctl.Verifications(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []hostsim.Record
	for _, r := range all {
		if r.Method == method && len(r.RawTarget) >= len(prefix) && r.RawTarget[:len(prefix)] == prefix {
			out = append(out, r)
		}
	}
	return out
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a Keeper run by a test on a fake clock.
type running struct {
	*Keeper
	clk    *fakeClock
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	states chan *State
}

// run starts a keeper against h with keys in dir; edit adjusts the options.
// It returns once the first iteration is done.
func run(t testing.TB, h *host, dir string, edit func(*Options)) *running {
	t.Helper()
	logs := &syncBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.DebugLevel)
	r := &running{clk: newFakeClock(time.Now()), logs: logs, done: make(chan error, 1), states: make(chan *State, 100000)}
	opts := Options{
		WireServer:  h.Addrs().WireServer,
		KeysDir:     dir,
		Clock:       r.clk,
		Log:         l,
		CallTimeout: 2 * time.Second,
		OnState: func(s *State) {
			select {
			case r.states <- s:
			default:
			}
		},
	}
	if edit != nil {
		edit(&opts)
	}
	k, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Keeper = k
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- k.Run(ctx) }()
	t.Cleanup(r.stop)
	r.clk.waitTimer(t)
	return r
}

// step fires the pending poll timer and returns the State of the
// iteration it started.
func (r *running) step(t testing.TB) *State {
	t.Helper()
	r.clk.fire(t)
	r.clk.waitTimer(t)
	return r.Current()
}

// stepUntil steps until cond holds, at most n times.
func (r *running) stepUntil(t testing.TB, n int, what string, cond func(*State) bool) *State {
	t.Helper()
	s := r.Current()
	for i := 0; i < n && !cond(s); i++ {
		s = r.step(t)
	}
	if !cond(s) {
		t.Fatalf("after %d polls: not %s; state %+v", n, what, s)
	}
	return s
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			panic("keeper did not stop")
		}
	})
}

// keyFiles lists the guids of the key files in dir.
func keyFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.key"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m {
		b := filepath.Base(p)
		out = append(out, b[:len(b)-len(".key")])
	}
	return out
}

func keysDir(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state", "keys")
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
