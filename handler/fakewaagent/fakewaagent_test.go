package fakewaagent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunTimeoutKillsTheProcessGroup: like waagent, a command past its
// timeout is killed with its whole process group, and the environment
// carries waagent's variables.
func TestRunTimeoutKillsTheProcessGroup(t *testing.T) {
	base := t.TempDir()
	w, err := New(filepath.Join(base, "lib"), filepath.Join(base, "log"), "P.T")
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(base, "pkg")
	os.MkdirAll(filepath.Join(pkg, "bin"), 0o755)
	os.WriteFile(filepath.Join(pkg, "HandlerManifest.json"),
		[]byte(`[{"handlerManifest":{"enableCommand":"bin/slow enable","installCommand":"/bin/env-dump install"}}]`), 0o644)
	os.WriteFile(filepath.Join(pkg, "bin", "slow"), []byte("#!/bin/sh\nsleep 30 &\necho $! > child.pid\nsleep 30\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "bin", "env-dump"), []byte("#!/bin/sh\npwd\nenv\n"), 0o644)
	if err := w.Deploy(Package{Version: "1.0", Dir: pkg}); err != nil {
		t.Fatal(err)
	}
	w.Timeouts = map[string]time.Duration{"enable": 300 * time.Millisecond}
	r, err := w.Run("1.0", "enable", 4, nil)
	if err != nil || !r.TimedOut {
		t.Fatalf("got %v, %v; want a timeout", r, err)
	}
	data, _ := os.ReadFile(filepath.Join(w.Root("1.0"), "child.pid"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if child == 0 {
		t.Fatal("the command did not start its child")
	}
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if stat, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); strings.Contains(string(stat), ") Z") {
			break // killed, not yet reaped by init
		}
		if time.Now().After(deadline) {
			t.Fatal("the background child survived the timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}

	r, err = w.Run("1.0", "install", 4, map[string]string{"AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE": "NOT_RUN"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("%v, %v", r, err)
	}
	for _, want := range []string{
		w.Root("1.0") + "\n", // cwd
		"ConfigSequenceNumber=4", "AZURE_GUEST_AGENT_EXTENSION_PATH=" + w.Root("1.0"),
		"AZURE_GUEST_AGENT_EXTENSION_VERSION=1.0", "AZURE_GUEST_AGENT_WIRE_PROTOCOL_ADDRESS=168.63.129.16",
		"AZURE_GUEST_AGENT_EXTENSION_SUPPORTED_FEATURES=", "AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE=NOT_RUN",
	} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("command output lacks %q:\n%s", want, r.Output)
		}
	}
	if _, err := w.Run("1.0", "disable", 4, nil); err == nil {
		t.Error("a verb the manifest lacks ran")
	}
}
