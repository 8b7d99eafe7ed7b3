package benchproxy

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the bench's client children.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestGoalsMetOrMissed(t *testing.T) {
	tests := []struct {
		name                  string
		seqDirect, seqA, seqN float64 // p50 µs
		rpsA, rpsN            float64
		cpuA, cpuN            float64
		want                  [3]bool
	}{
		{"all met", 100, 110, 150, 9000, 8000, 10, 20, [3]bool{true, true, true}},
		{"added p50 at the bound", 100, 130, 150, 9000, 8000, 14, 20, [3]bool{true, true, true}},
		{"all missed", 100, 140, 150, 7000, 8000, 15, 20, [3]bool{false, false, false}},
		{"nginx adds nothing", 100, 101, 100, 8000, 8000, 0, 0, [3]bool{false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReport(CompareOptions{Clients: 32})
			r.workload(workSeq).Targets = map[string]*Figures{targetDirect: {P50Us: tt.seqDirect}, targetAgent: {P50Us: tt.seqA}, targetNginx: {P50Us: tt.seqN}}
			r.workload(workConc).Targets = map[string]*Figures{targetAgent: {RequestsPerSecond: tt.rpsA}, targetNginx: {RequestsPerSecond: tt.rpsN}}
			r.Proxies[targetAgent] = ProxyCost{CPUPerRequestUs: tt.cpuA}
			r.Proxies[targetNginx] = ProxyCost{CPUPerRequestUs: tt.cpuN}
			r.evaluate()
			var got [3]bool
			for i, g := range r.Goals {
				got[i] = g.Met
			}
			if got != tt.want {
				t.Errorf("met = %v, want %v (goals %+v)", got, tt.want, r.Goals)
			}
			var out bytes.Buffer
			r.PrintTable(&out)
			for i, g := range r.Goals {
				line := lineWith(out.String(), "| "+g.Name)
				if want := map[bool]string{true: "| met", false: "| MISSED"}[tt.want[i]]; !strings.Contains(line, want) {
					t.Errorf("table line %q lacks %q", line, want)
				}
			}
		})
	}
}

// lineWith returns the last line containing sub.
func lineWith(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// TestCompareSmoke runs `make bench`'s comparison with tiny counts: the
// real msp-agent, nginx and direct requests, so that the bench cannot
// rot. The figures mean nothing at these sizes; the test checks that
// every target answered every workload and that the files are written.
func TestCompareSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (eBPF, cgroups, nginx)")
	}
	agent := filepath.Join(t.TempDir(), "msp-agent")
	if out, err := exec.Command("go", "build", "-o", agent, "../../cmd/msp-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build msp-agent: %v\n%s", err, out)
	}
	o := CompareOptions{Rounds: 1, Seq: 20, NewConn: 10, Clients: 4, Dur: 200 * time.Millisecond, Agent: agent, Out: t.TempDir()}
	var progress bytes.Buffer
	rep, err := Compare(o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rep.Workloads {
		for _, tg := range targets {
			f := w.Targets[tg]
			if f == nil || f.Requests == 0 || f.P50Us <= 0 || f.P99Us < f.P50Us || f.RequestsPerSecond <= 0 {
				t.Errorf("%s %s: figures %+v", w.Name, tg, f)
			}
		}
	}
	if w := rep.workload(workSeq); w.Targets[targetAgent].Requests != o.Seq {
		t.Errorf("agent sequential requests = %d, want %d", w.Targets[targetAgent].Requests, o.Seq)
	}
	for _, tg := range []string{targetAgent, targetNginx} {
		if p := rep.Proxies[tg]; p.RSSKiB <= 0 || p.IdleRSSKiB <= 0 {
			t.Errorf("%s: cost %+v, want RSS figures", tg, p)
		}
	}
	if n := rep.Proxies[targetNginx].Processes; n < 2 {
		t.Errorf("nginx processes = %d, want the master and its workers", n)
	}
	if len(rep.Goals) != 3 {
		t.Errorf("goals = %+v, want 3", rep.Goals)
	}
	if !strings.Contains(progress.String(), "round 1/1") || !strings.Contains(progress.String(), "-> nginx") {
		t.Errorf("progress line: %q", progress.String())
	}
	if err := rep.WriteFiles(o.Out); err != nil {
		t.Fatal(err)
	}
	var back Report
	data, err := os.ReadFile(filepath.Join(o.Out, jsonName))
	if err != nil || json.Unmarshal(data, &back) != nil || len(back.Workloads) != 3 || back.Machine.Kernel == "" {
		t.Errorf("bench.json: %v %s", err, data)
	}
	svg, err := os.ReadFile(filepath.Join(o.Out, svgName))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Lines []struct {
			Target string `xml:"data-target,attr"`
		} `xml:"polyline"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil || len(doc.Lines) != 9 {
		t.Errorf("bench.svg: %v, %d distributions, want 9 (3 workloads × 3 targets)", err, len(doc.Lines))
	}
}
