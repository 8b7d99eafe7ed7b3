package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/internal/agenttest"
)

// Users of the clients: the flood comes from nobody, legitimate traffic
// from root and from another unprivileged user.
const (
	floodUID = 65534
	otherUID = 1000
	perUID   = 64 // the agent's default maxConnectionsPerUid
)

// newAgent starts the agent with limits merged into its configuration.
func newAgent(t *testing.T, limits map[string]any, edit ...func(*agenttest.Harness)) *agenttest.Harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end: needs root (eBPF, cgroups, other users)")
	}
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.5"})
	h.Config["logLevel"] = "info"
	if limits != nil {
		h.Config["limits"] = limits
	}
	for _, e := range edit {
		e(h)
	}
	h.WriteConfig()
	h.Start()
	return h
}

// legit runs the legitimate traffic: sequential IMDS requests from root
// and from otherUID at the same time.
func legit(t *testing.T, h *agenttest.Harness, n int) (root, other clientResult) {
	t.Helper()
	spec := clientSpec{Mode: "seq", Addr: h.Emu.Addrs().IMDS, Request: imdsRequest, N: n, Timeout: 10 * time.Second}
	a, b := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	return a.wait(t), b.wait(t)
}

func requireAllOK(t *testing.T, who string, r clientResult, n int) {
	t.Helper()
	if r.Status[200] != n || r.failed() > 0 {
		t.Errorf("%s: %d of %d answered 200; statuses %v reasons %v errors %v %v", who, r.Status[200], n, r.Status, r.Reason, r.Errors, r.Samples)
	}
}

// idleFlood is issue 13 item 3's first case: n connections from one
// unprivileged uid, each sending one request and then idling, while root
// and another user send legitimate traffic. Within the per-uid cap they
// are served and stay open; beyond it they get a fast 503 overloaded.
func idleFlood(t *testing.T, n, legitN int) {
	h := newAgent(t, map[string]any{"headerReadSeconds": 30, "idleSeconds": 300})
	addr := h.Emu.Addrs().IMDS
	r0, o0 := legit(t, h, legitN) // unloaded
	requireAllOK(t, "unloaded root", r0, legitN)
	requireAllOK(t, "unloaded other uid", o0, legitN)

	spec := clientSpec{Mode: "seq", Addr: addr, Request: imdsRequest, N: legitN, Timeout: 10 * time.Second}
	root, other := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	start := time.Now()
	flood := startClient(t, h, floodUID, clientSpec{Mode: "hold", Addr: addr, Request: imdsRequest, N: n, Timeout: 10 * time.Second})
	floodTook := time.Since(start)
	rss := agentRSS(t, h)
	r1, o1 := root.wait(t), other.wait(t)
	r2, o2 := legit(t, h, legitN) // the flood's connections held
	f := flood.wait(t)

	for _, c := range []struct {
		who string
		r   clientResult
	}{{"root during the flood", r1}, {"other uid during the flood", o1}, {"root beside the held flood", r2}, {"other uid beside the held flood", o2}} {
		requireAllOK(t, c.who, c.r, legitN)
	}
	if f.Status[200] != perUID || f.Status[503] != n-perUID || f.Reason["overloaded"] != n-perUID || f.failed() > 0 {
		t.Errorf("flood of %d: statuses %v reasons %v errors %v %v; want %d × 200 and the rest 503 overloaded", n, f.Status, f.Reason, f.Errors, f.Samples, perUID)
	}
	if f.Open != perUID {
		t.Errorf("flood: %d connections open at the end; want the %d within the cap", f.Open, perUID)
	}
	p99 := f.percentile(99)
	if p99 > 2*time.Second {
		t.Errorf("flood: p99 %v to an answer (503 overloaded for most); want fast", p99)
	}
	ratio := func(a, b clientResult) float64 { return float64(a.percentile(99)) / float64(b.percentile(99)) }
	t.Logf("flood %d conns uid %d opened in %v: answers p50 %v p99 %v max %v; agent RSS %d KiB under flood", n, floodUID, floodTook.Round(time.Millisecond), f.percentile(50), p99, f.Max, rss)
	t.Logf("p99 unloaded / during the flood / beside the held flood: root %v / %v (×%.2f) / %v (×%.2f); uid %d %v / %v (×%.2f) / %v (×%.2f)",
		r0.percentile(99), r1.percentile(99), ratio(r1, r0), r2.percentile(99), ratio(r2, r0),
		otherUID, o0.percentile(99), o1.percentile(99), ratio(o1, o0), o2.percentile(99), ratio(o2, o0))
	// The goal (3× unloaded) is a figure for docs/reliability.md, not an
	// assertion: on a shared machine the flood client competes for the
	// same CPUs, and timing goals are benchmarks here.
}

func TestIdleFloodOverPerUIDCap(t *testing.T) { idleFlood(t, 1000, 300) }

// silentFlood: n connections from one uid that never send a byte. Those
// beyond the per-uid cap wait at most a second for a head, no more of
// them than the total cap, so the agent's RSS grows by less than
// maxGrowthKiB; the header-read timeout (3 s here) closes the ones within
// the cap; root and another user are served throughout.
func silentFlood(t *testing.T, n, maxGrowthKiB int) {
	h := newAgent(t, map[string]any{"headerReadSeconds": 3})
	base := agentRSS(t, h)
	silent := startClient(t, h, floodUID, clientSpec{Mode: "silent", Addr: h.Emu.Addrs().IMDS, N: n, Timeout: 10 * time.Second})
	rss := agentRSS(t, h)
	r, o := legit(t, h, 300)
	sock := filepath.Join(h.Config["stateDir"].(string), "metrics.sock")
	h.Eventually("the agent holding no connection", func() bool { return metric(t, sock, "msp_open_connections") == 0 })
	time.Sleep(time.Second) // over-cap waits are not counted there: 1 s
	s := silent.wait(t)
	requireAllOK(t, "root beside silent connections", r, 300)
	requireAllOK(t, "other uid beside silent connections", o, 300)
	// A handful may still sit in the kernel's full accept queue (their
	// handshake completed on the client's side only) and reach the agent
	// later; each is then closed like the others.
	if s.failed() > 0 || s.Open > n/100 {
		t.Errorf("silent flood: %d failed to connect (%v %v), %d still open after the header-read timeout", s.failed(), s.Errors, s.Samples, s.Open)
	}
	if rss-base > maxGrowthKiB {
		t.Errorf("agent RSS %d KiB → %d KiB with %d silent connections; want under %d KiB more", base, rss, n, maxGrowthKiB)
	}
	t.Logf("%d silent connections: agent RSS %d → %d KiB; root p99 %v, uid %d p99 %v; %d open after the header-read timeout", n, base, rss, r.percentile(99), otherUID, o.percentile(99), s.Open)
}

// TestSilentFlood: 15,000 silent connections held 185 MB of agent RSS
// before over-cap waits were bounded; 32 MB after.
func TestSilentFlood(t *testing.T) { silentFlood(t, 15000, 96<<10) }

// agentRSS is the agent's resident set in KiB.
func agentRSS(t *testing.T, h *agenttest.Harness) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.PID()))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", h.PID())
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// slowHead is a request head without its end: the slowloris client adds
// a header value one byte at a time.
const slowHead = "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n"

// TestSlowlorisDoesNotStarve: clients trickling their heads are cut by the
// header-read timeout (2 s here), counted from the connection's start,
// while root and another user are served as usual.
func TestSlowlorisDoesNotStarve(t *testing.T) {
	const headerRead = 2 * time.Second
	h := newAgent(t, map[string]any{"headerReadSeconds": 2})
	addr := h.Emu.Addrs().IMDS
	slow := startClient(t, h, floodUID, clientSpec{Mode: "slowloris", Addr: addr, Request: slowHead, N: perUID, Interval: 100 * time.Millisecond, Timeout: 10 * time.Second})
	r, o := legit(t, h, 200)
	s := slow.wait(t)
	requireAllOK(t, "root beside slowloris", r, 200)
	requireAllOK(t, "other uid beside slowloris", o, 200)
	if s.answered() != perUID || s.failed() > 0 {
		t.Fatalf("slowloris: %d of %d connections ended by the agent; errors %v %v", s.answered(), perUID, s.Errors, s.Samples)
	}
	if lo, hi := s.Latencies[0], s.Latencies[len(s.Latencies)-1]; lo < headerRead-100*time.Millisecond || hi > headerRead+3*time.Second {
		t.Errorf("slowloris connections ended after %v to %v; want about the header-read timeout %v", lo, hi, headerRead)
	}
	t.Logf("slowloris: %d connections cut after %v to %v; root p99 %v, uid %d p99 %v beside them", perUID, s.Latencies[0], s.Latencies[len(s.Latencies)-1], r.percentile(99), otherUID, o.percentile(99))
}

// TestUpstreamFaults: the emulator's faults on IMDS reach the caller as a
// clean answer (the upstream's own, or 502/504 with a reason) within the
// configured timeouts; faults on the secure-channel status (WireServer)
// leave the agent signing with the key it holds.
func TestUpstreamFaults(t *testing.T) {
	h := newAgent(t, map[string]any{"responseHeaderSeconds": 2, "dialSeconds": 1, "bodyIdleSeconds": 2})
	url := h.URL(hostproto.IMDS, "/metadata/instance?api-version=2021-02-01")
	tests := []struct {
		fault  hostsim.Fault
		status int // -1: curl reports a transfer error
		reason string
		within time.Duration
	}{
		{hostsim.Fault{Kind: hostsim.FaultRefuse}, 502, "upstream-unavailable", 2 * time.Second},
		{hostsim.Fault{Kind: hostsim.FaultDelay, DelayMs: 4000}, 504, "upstream-timeout", 3500 * time.Millisecond},
		{hostsim.Fault{Kind: hostsim.FaultDelay, DelayMs: 500}, 200, "", 3 * time.Second},
		{hostsim.Fault{Kind: hostsim.FaultHTTP500}, 500, "", 2 * time.Second},
		{hostsim.Fault{Kind: hostsim.FaultMalformedJSON}, 200, "", 2 * time.Second},
		{hostsim.Fault{Kind: hostsim.FaultDropAfterHeaders}, -1, "", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(faultName(tt.fault), func(t *testing.T) {
			f := tt.fault
			f.Endpoint = "imds"
			if err := h.Emu.SetFault(f); err != nil {
				t.Fatal(err)
			}
			defer h.Emu.SetFault(hostsim.Fault{Endpoint: "imds", Kind: hostsim.FaultNone})
			start := time.Now()
			got := h.Curl(0, "GET", url)
			took := time.Since(start)
			if got.Status != tt.status || got.Reason != tt.reason {
				t.Errorf("got %d %q (%.200s); want %d %q", got.Status, got.Reason, got.Body, tt.status, tt.reason)
			}
			if took > tt.within {
				t.Errorf("answered after %v; want within %v", took, tt.within)
			}
			t.Logf("%s: %d %q after %v", f.Kind, got.Status, got.Reason, took.Round(time.Millisecond))
		})
	}

	// The host's status endpoint failing: the agent keeps its key.
	sock := filepath.Join(h.Config["stateDir"].(string), "metrics.sock")
	if got := h.Curl(0, "GET", url); got.Status != 200 {
		t.Fatalf("IMDS without a fault: %d %q", got.Status, got.Reason)
	}
	key := h.LastRecord(hostproto.IMDS, "/metadata/instance?api-version=2021-02-01").KeyGUID
	for _, f := range []hostsim.Fault{{Kind: hostsim.FaultHTTP500}, {Kind: hostsim.FaultMalformedJSON}, {Kind: hostsim.FaultRefuse}, {Kind: hostsim.FaultDelay, DelayMs: 5000}} {
		t.Run("status-"+faultName(f), func(t *testing.T) {
			f.Endpoint = "wireserver"
			if err := h.Emu.SetFault(f); err != nil {
				t.Fatal(err)
			}
			defer h.Emu.SetFault(hostsim.Fault{Endpoint: "wireserver", Kind: hostsim.FaultNone})
			time.Sleep(2500 * time.Millisecond) // two polls (1 s apart) fail
			if n := metric(t, sock, "msp_host_poll_failures"); n < 1 {
				t.Errorf("msp_host_poll_failures %v during the fault; want the polls failing", n)
			}
			since := lastSeq(h)
			for range 5 {
				if got := h.Curl(0, "GET", url); got.Status != 200 {
					t.Fatalf("IMDS while the host status fails (%s): %d %q %s", f.Kind, got.Status, got.Reason, got.Body)
				}
			}
			for _, r := range h.Emu.Verifications(since) {
				if r.Endpoint == "imds" && (!r.Valid || r.KeyGUID != key) {
					t.Errorf("IMDS request valid %v (%s) with key %s; want valid with the held key %s", r.Valid, r.Reason, r.KeyGUID, key)
				}
			}
		})
	}

	// The whole host down: a fast 502, and provisioning status answers.
	h.Emu.Close()
	start := time.Now()
	if got := h.Curl(0, "GET", url); got.Status != 502 || got.Reason != "upstream-unavailable" || time.Since(start) > 2*time.Second {
		t.Errorf("host down: %d %q after %v; want 502 upstream-unavailable at once", got.Status, got.Reason, time.Since(start))
	}
	if code, out := h.Status(0); code != 0 {
		t.Errorf("msp-agent --status with the host down: exit %d: %s", code, out)
	}
}

func faultName(f hostsim.Fault) string {
	if f.DelayMs > 0 {
		return fmt.Sprintf("%s-%dms", f.Kind, f.DelayMs)
	}
	return f.Kind
}

// lastSeq is the emulator's latest record sequence number.
func lastSeq(h *agenttest.Harness) uint64 {
	recs := h.Emu.Verifications(0)
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

// TestKeyRotationUnderLoad: two key rotations while root and another user
// send requests back to back: every request is answered 200 and every
// one the host received verifies.
func TestKeyRotationUnderLoad(t *testing.T) { rotateUnderLoad(t, 2, 2500*time.Millisecond, 3) }

// rotateUnderLoad bumps keyIncarnationId rotations times, gap apart,
// while root and otherUID each run workers keep-alive clients.
func rotateUnderLoad(t *testing.T, rotations int, gap time.Duration, workers int) {
	h := newAgent(t, nil)
	since := lastSeq(h)
	spec := clientSpec{Mode: "loop", Addr: h.Emu.Addrs().IMDS, Request: imdsRequest, N: workers, Duration: time.Duration(rotations+1) * gap, Timeout: 5 * time.Second}
	root, other := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	for inc := uint32(2); inc < uint32(rotations+2); inc++ {
		time.Sleep(gap)
		h.Apply(hostsim.Patch{KeyIncarnationID: &inc})
	}
	r, o := root.wait(t), other.wait(t)
	requireAllOK(t, "root", r, r.answered())
	requireAllOK(t, "other uid", o, o.answered())
	keys := map[string]int{}
	invalid := 0
	for _, rec := range h.Emu.Verifications(since) {
		if rec.Endpoint != "imds" {
			continue
		}
		keys[rec.KeyGUID]++
		if !rec.Valid || rec.Status != 200 {
			invalid++
			if invalid < 5 {
				t.Errorf("host record %d: valid %v (%s) status %d", rec.Seq, rec.Valid, rec.Reason, rec.Status)
			}
		}
	}
	if len(keys) != rotations+1 {
		t.Errorf("requests signed with %d keys %v; want %d (%d rotations)", len(keys), keys, rotations+1, rotations)
	}
	t.Logf("%d rotations under load: %d + %d requests, %d failed, %d invalid at the host; per key %v", rotations, r.answered(), o.answered(), r.failed()+o.failed(), invalid, keys)
}

// TestKillRestartUnderLoad: SIGKILL the agent in enforce mode while
// clients run, then start it again. No client waits past its timeout (each
// gets a response or a fast error), the host accepts no request that is
// not validly signed, and service resumes.
func TestKillRestartUnderLoad(t *testing.T) { killUnderLoad(t, 1, 2*time.Second) }

// killUnderLoad kills and restarts the agent cycles times (3 s of
// service, SIGKILL, down for down) under root and otherUID clients.
func killUnderLoad(t *testing.T, cycles int, down time.Duration) {
	const timeout = 3 * time.Second
	h := newAgent(t, nil)
	since := lastSeq(h)
	spec := clientSpec{Mode: "loop", Addr: h.Emu.Addrs().IMDS, Request: imdsRequest, N: 4, Duration: time.Duration(cycles)*(4*time.Second+down) + 3*time.Second, Timeout: timeout}
	root, other := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	var ready []time.Duration
	for range cycles {
		time.Sleep(3 * time.Second)
		if err := h.Stop(syscall.SIGKILL); err == nil {
			t.Fatal("agent exited cleanly after SIGKILL")
		}
		time.Sleep(down)
		start := time.Now()
		h.Start()
		ready = append(ready, time.Since(start).Round(time.Millisecond))
	}
	r, o := root.wait(t), other.wait(t)
	for _, c := range []struct {
		who string
		r   clientResult
	}{{"root", r}, {"other uid", o}} {
		if c.r.Max > timeout+500*time.Millisecond {
			t.Errorf("%s: an attempt took %v; want each bounded by the %v timeout", c.who, c.r.Max, timeout)
		}
		if c.r.Errors["timeout"] > 0 {
			t.Errorf("%s: %d attempts timed out (%s); want a response or a fast error", c.who, c.r.Errors["timeout"], c.r.Samples["timeout"])
		}
		for st := range c.r.Status {
			if st != 200 && st != 503 {
				t.Errorf("%s: %d answers %d (reasons %v)", c.who, c.r.Status[st], st, c.r.Reason)
			}
		}
		if c.r.Status[200] == 0 {
			t.Errorf("%s: no request served", c.who)
		}
	}
	var accepted, rejected int
	for _, rec := range h.Emu.Verifications(since) {
		if rec.Endpoint != "imds" {
			continue
		}
		switch {
		case !rec.Valid && rec.Status < 300:
			accepted++
			t.Errorf("host accepted an unverified request: %+v", rec)
		case !rec.Valid:
			rejected++
		}
	}
	t.Logf("%d SIGKILLs under load: restarted agents ready after %v; root %v %v, uid %d %v %v; longest attempt %v/%v; host rejected %d unsigned requests, accepted %d",
		cycles, ready, r.Status, r.Errors, otherUID, o.Status, o.Errors, r.Max.Round(time.Millisecond), o.Max.Round(time.Millisecond), rejected, accepted)
}

// TestAuditLogDiskFull: the agent's logDir on a tiny tmpfs that the test
// fills. Requests keep being served; the write error reaches the agent's
// log and msp_audit_lines_lost_total.
func TestAuditLogDiskFull(t *testing.T) {
	var logDir string
	h := newAgent(t, nil, func(h *agenttest.Harness) {
		logDir = filepath.Join(h.Dir, "logfs")
		if err := os.Mkdir(logDir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", logDir, "tmpfs", 0, "size=256k,mode=0750"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(logDir, unix.MNT_DETACH) })
		h.Config["logDir"] = logDir
	})
	fill(t, filepath.Join(logDir, "filler"))
	url := h.URL(hostproto.IMDS, "/metadata/instance?api-version=2021-02-01")
	for i := range 50 {
		if got := h.Curl(0, "GET", url); got.Status != 200 {
			t.Fatalf("request %d with the log disk full: %d %q %s", i, got.Status, got.Reason, got.Body)
		}
	}
	h.Eventually("audit write error in the agent log", func() bool {
		return strings.Contains(h.LogText(), "audit log write failed")
	})
	sock := filepath.Join(h.Config["stateDir"].(string), "metrics.sock")
	var lost float64
	h.Eventually("msp_audit_lines_lost_total > 0", func() bool {
		lost = metric(t, sock, "msp_audit_lines_lost_total")
		return lost > 0
	})
	if n, r := strings.Count(h.LogText(), "audit log write failed"), strings.Count(h.LogText(), "audit log writes recovered"); n != 1 || r != 0 {
		t.Errorf("agent log: %d write failures and %d recoveries reported while the disk stays full; want 1 and 0", n, r)
	}
	// Space again: the next lines land and the recovery is reported.
	if err := os.Remove(filepath.Join(logDir, "filler")); err != nil {
		t.Fatal(err)
	}
	if got := h.Curl(0, "GET", url); got.Status != 200 {
		t.Fatalf("request after freeing the disk: %d %q", got.Status, got.Reason)
	}
	h.Eventually("the recovery in the agent log", func() bool {
		return strings.Contains(h.LogText(), "audit log writes recovered")
	})
	t.Logf("log disk full: 50 requests served, %v audit lines counted lost, one failure and one recovery reported", lost)
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// metric reads one unlabelled sample from the agent's metrics socket.
func metric(t *testing.T, sock, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := metrics.Fetch(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics:\n%s", name, out)
	return 0
}
