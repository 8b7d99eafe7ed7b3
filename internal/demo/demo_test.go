package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/bpf/bpftest"
)

// testIP is this test process's loopback address for the emulated
// endpoints (ebpf.md §9); 127.0.6.x belongs to this package, so the test
// runs beside other packages and beside a real `make demo`.
var testIP = fmt.Sprintf("127.0.6.%d", os.Getpid()%100+100)

// TestDemo runs the demo as `make demo` does, on this process's loopback
// address: every scenario passes, the table says so, the audit log is
// kept for `mspctl policy suggest`, and nothing is left behind.
func TestDemo(t *testing.T) {
	cgRoot := bpftest.RequireRoot(t)
	bin := t.TempDir()
	for _, cmd := range []string{"msp-demo", "msp-agent", "msp-handler", "msp-hostsim"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "../../cmd/"+cmd)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
	}
	control, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	controlAddr := control.Addr().String()
	control.Close()
	auditOut := filepath.Join(t.TempDir(), "dist", "demo-audit.jsonl")
	// As `make demo` runs it, on this process's addresses.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "msp-demo"), "-bin", bin, "-manifest", "../../manifest/HandlerManifest.json",
		"-audit-out", auditOut, "-imds-addr", testIP+":80", "-wireserver-addr", testIP+":8080", "-hostga-addr", testIP+":32526",
		"-control-addr", controlAddr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("msp-demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("msp-demo: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Minute {
		t.Errorf("the demo took %s; it must finish within 2 minutes after the build", elapsed)
	}
	var passed, failed int
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if _, err := fmt.Sscanf(lines[len(lines)-1], "demo: %d passed, %d failed", &passed, &failed); err != nil || failed != 0 || passed < 9 {
		t.Fatalf("last line %q: want every scenario (at least 9) passed and none failed", lines[len(lines)-1])
	}
	for _, want := range []string{"root-required", "audit-deny", "forged header stripped", "unsigned: rejected 401", "ManagedIdentityCredential", "nothing running, attached or pinned"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table does not show %q", want)
		}
	}

	// The audit log kept holds the decisions the table showed.
	f, err := os.Open(auditOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	decisions := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		decisions[e.Decision]++
	}
	for _, d := range []string{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionAuditDeny} {
		if decisions[d] == 0 {
			t.Errorf("kept audit log has no %s line: %v", d, decisions)
		}
	}

	// Nothing left: no demo cgroup, no bpffs mount, no work directory.
	if m, _ := filepath.Glob(filepath.Join(cgRoot, fmt.Sprintf("msp-demo-%d", os.Getpid()))); len(m) > 0 {
		t.Errorf("demo cgroup left: %v", m)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), "msp-demo-") {
		t.Error("a bpffs mount of the demo is left")
	}
}

func TestPrintMarksFailures(t *testing.T) {
	var out bytes.Buffer
	Print(&out, Result{Rows: []Row{
		{Who: "curl (root)", What: "WireServer", Agent: "allow", Host: "signature valid (enforce)", HTTP: "200", Pass: true},
		{Who: "curl (nobody)", What: "WireServer", Agent: "allow", Host: "signature valid (enforce)", HTTP: "200", Why: "HTTP 200 (want 403)"},
	}, Passed: 1, Failed: 1})
	for _, want := range []string{"pass", "FAIL: HTTP 200 (want 403)", "demo: 1 passed, 1 failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
