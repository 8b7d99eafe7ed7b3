// Package testbin builds the module's commands for tests (the handler and
// the fake agent, once per test binary and version) and holds the small
// helpers the handler's process tests share.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// Build compiles the package (an import path in this module) with
// `-X main.version=<version>` and `-X <module>/internal/version.Version=<version>`
// when version is set (the fake agent reads the first, the real commands
// the second), and returns the binary.
// Builds are cached for the life of the test binary in one temporary
// directory; call Cleanup from TestMain to remove it.
func Build(pkg, version string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	key := pkg + "@" + version
	if p, ok := built[key]; ok {
		return p, nil
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "msp-testbin")
		if err != nil {
			return "", err
		}
		dir = d
	}
	out := filepath.Join(dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(built)))
	args := []string{"build", "-o", out}
	if version != "" {
		args = append(args, "-ldflags", "-X main.version="+version+" -X "+VersionVar+"="+version)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	built[key] = out
	return out, nil
}

// Cleanup removes the built binaries.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Import paths of the agents the handler's tests install: the real one,
// and the fake one for the tests that need a misbehaving agent.
const (
	Agent     = "github.com/mspguest/msp/cmd/msp-agent"
	FakeAgent = "github.com/mspguest/msp/handler/internal/fakeagent"
)

// VersionVar is the variable the real commands report as their version.
const VersionVar = "github.com/mspguest/msp/internal/version.Version"

// Main runs the tests and removes the built binaries: call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// WaitFor polls cond every 20 ms for up to 15 s and fails the test with
// what when it never holds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
