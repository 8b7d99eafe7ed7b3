package benchproxy

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mspguest/msp/bpf"
)

type rec = bpf.Record

// recordsFunc adapts a function to proxy.Records.
type recordsFunc func(netip.AddrPort) (bpf.Record, bool, error)

func (f recordsFunc) Take(p netip.AddrPort) (bpf.Record, bool, error) { return f(p) }

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime reads user+system CPU time of a process (all threads).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p/100*float64(len(sorted)-1))]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// table holds the figures of issue 8 item 8; index 0 is direct, 1 proxied.
type table struct {
	seqP50, seqP99, newP50 [2]time.Duration
	rps                    [2]float64
	cpuUs                  float64
	idleRSS, afterRSS      int // KiB
	heldRSS, idleConns     int
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func (t *table) print(w io.Writer) {
	row := func(name, direct, proxied, figure, goal string, met bool) {
		m := "met"
		if !met {
			m = "MISSED"
		}
		fmt.Fprintf(w, "| %-44s | %10s | %10s | %12s | %-16s | %-6s |\n", name, direct, proxied, figure, goal, m)
	}
	fmt.Fprintf(w, "| %-44s | %10s | %10s | %12s | %-16s | %-6s |\n", "measure", "direct", "proxied", "figure", "goal", "")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 14), strings.Repeat("-", 18), strings.Repeat("-", 8))
	f := func(v float64, unit string) string { return strconv.FormatFloat(v, 'f', 1, 64) + unit }
	add50 := us(t.seqP50[1] - t.seqP50[0])
	add99 := us(t.seqP99[1] - t.seqP99[0])
	row("sequential keep-alive GET p50 (added)", f(us(t.seqP50[0]), "µs"), f(us(t.seqP50[1]), "µs"), f(add50, "µs"), "≤ 60 µs", add50 <= 60)
	row("sequential keep-alive GET p99 (added)", f(us(t.seqP99[0]), "µs"), f(us(t.seqP99[1]), "µs"), f(add99, "µs"), "≤ 150 µs", add99 <= 150)
	ratio := 0.0
	if t.rps[0] > 0 {
		ratio = t.rps[1] / t.rps[0]
	}
	row("32 keep-alive clients, requests/s (ratio)", f(t.rps[0], ""), f(t.rps[1], ""), strconv.FormatFloat(ratio, 'f', 2, 64), "≥ 0.70", ratio >= 0.70)
	row("proxy CPU per request (32 clients)", "", f(t.cpuUs, "µs"), f(t.cpuUs, "µs"), "≤ 20 µs", t.cpuUs <= 20)
	addNew := us(t.newP50[1] - t.newP50[0])
	row("new connection per request p50 (added)", f(us(t.newP50[0]), "µs"), f(us(t.newP50[1]), "µs"), f(addNew, "µs"), "≤ 100 µs", addNew <= 100)
	row("proxy idle RSS", "", f(float64(t.idleRSS)/1024, "MiB"), f(float64(t.idleRSS)/1024, "MiB"), "≤ 15 MiB", t.idleRSS <= 15*1024)
	per := 0.0
	if t.idleConns > 0 {
		per = float64(t.heldRSS-t.afterRSS) / float64(t.idleConns)
	}
	row(fmt.Sprintf("RSS per idle connection (%d held)", t.idleConns), "", f(float64(t.heldRSS)/1024, "MiB"), f(per, "KiB"), "≤ 30 KiB", per <= 30)
	fmt.Fprintf(w, "\nproxy RSS after the load phases: %.1f MiB (the per-connection figure is measured from there)\n", float64(t.afterRSS)/1024)
}
