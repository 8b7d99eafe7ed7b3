package keykeeper

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/hostsim"
)

// TestSimulatedDay runs 24 hours of polling on the fake clock, with a key
// rotation, a host outage and a disabled spell, and checks that the
// keeper ends where the host is and leaks nothing: goroutines and open
// files are the same at hour 24 as at hour 1, and so is the live heap once
// the in-process emulator's records are forgotten (issue 13 item 3).
func TestSimulatedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 5,760 polls")
	}
	h := startHost(t)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	// The run's log buffer and state channel would keep every poll's
	// output: heap the keeper does not hold.
	r := run(t, h, keysDir(t), func(o *Options) { o.Log, o.OnState = quiet, func(*State) {} })
	start := r.clk.Now()
	var firstHour, end usage
	first := r.Current().KeyGUID
	polls, maxG := 0, 0
	events := []struct {
		at    time.Duration
		apply func()
	}{
		{6 * time.Hour, func() { h.set(t, hostsim.Patch{KeyIncarnationID: ptr(uint32(2))}) }},
		{12 * time.Hour, func() { h.fault(t, hostsim.Fault{Kind: hostsim.FaultRefuse}) }},
		{12*time.Hour + 10*time.Minute, func() { h.fault(t, hostsim.Fault{Kind: hostsim.FaultNone}) }},
		{18 * time.Hour, func() { h.set(t, hostsim.Patch{SecureChannelEnabled: ptr(false)}) }},
		{19 * time.Hour, func() { h.set(t, hostsim.Patch{SecureChannelEnabled: ptr(true)}) }},
	}
	var failures, rotations int
	last := first
	for r.clk.Now().Sub(start) < 24*time.Hour {
		for len(events) > 0 && r.clk.Now().Sub(start) >= events[0].at {
			events[0].apply()
			events = events[1:]
		}
		s := r.step(t)
		polls++
		if s.LastError != nil {
			failures++
		}
		if s.KeyGUID != "" && s.KeyGUID != last {
			rotations++
			last = s.KeyGUID
		}
		if polls%500 == 0 {
			maxG = max(maxG, keeperGoroutines())
		}
		if polls == 240 { // one simulated hour: connections and buffers warmed up
			firstHour = measure(h)
		}
	}
	s := r.Current()
	if s.LastError != nil || !s.Latched || s.KeyGUID == first || s.KeyGUID != *h.View().AttestedKeyGUID {
		t.Errorf("after 24 h: err %v latched %v key %s; host %s", s.LastError, s.Latched, s.KeyGUID, *h.View().AttestedKeyGUID)
	}
	if rotations != 1 || failures < 5 || polls < 5700 {
		t.Errorf("%d polls, %d failures, %d rotations; want ≈5760, some, 1", polls, failures, rotations)
	}
	end = measure(h)
	t.Logf("24 h simulated: %d polls, %d failed, %d rotation, at most %d keeper goroutines while asleep", polls, failures, rotations, maxG)
	t.Logf("from hour 1 to hour 24: goroutines %d → %d, open files %d → %d, heap %d → %d KiB (emulator records %d → %d)",
		firstHour.goroutines, end.goroutines, firstHour.fds, end.fds, firstHour.heap>>10, end.heap>>10, firstHour.records, end.records)
	if end.goroutines > firstHour.goroutines+2 || end.fds > firstHour.fds+2 {
		t.Errorf("goroutines %d → %d, open files %d → %d over 23 simulated hours; want flat\n%s", firstHour.goroutines, end.goroutines, firstHour.fds, end.fds, allStacks())
	}
	// The in-process emulator keeps every request's record; with them
	// forgotten, what the heap grew by is the keeper's.
	h.Reset()
	kept := measure(h)
	t.Logf("heap without the emulator's records: %d → %d KiB", firstHour.heap>>10, kept.heap>>10)
	if grew := int64(kept.heap) - int64(firstHour.heap); grew > 1<<20 {
		t.Errorf("heap grew %d KiB over 23 simulated hours (emulator records forgotten); want under 1 MiB", grew>>10)
	}
	r.stop()
	deadline := time.Now().Add(5 * time.Second)
	for keeperGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := keeperGoroutines(); n > 0 {
		t.Errorf("%d keeper goroutines left after Run returned:\n%s", n, allStacks())
	}
}

// usage is what a leak would grow.
type usage struct {
	goroutines, fds, records int
	heap                     uint64 // live heap after a collection
}

func measure(h *host) usage {
	// The test's own control-API connection is not the keeper's.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), records: len(h.Verifications(0)), heap: ms.HeapAlloc}
}

// keeperGoroutines counts the goroutines running keeper code (not tests).
func keeperGoroutines() int {
	n := 0
	for _, g := range strings.Split(allStacks(), "\n\n") {
		if strings.Contains(g, "keykeeper.(*Keeper)") || strings.Contains(g, "keykeeper.(*hostClient)") {
			n++
		}
	}
	return n
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// TestHostSocketsCarryExemptMark: the keeper's dialer sets SO_MARK so the
// redirector leaves its host calls alone; 0 sets none.
func TestHostSocketsCarryExemptMark(t *testing.T) {
	requireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, mark := range []uint32{0x4d5350, 0} {
		c := newHostClient(ln.Addr().String(), DefaultHostHeader, time.Second, mark)
		conn, err := c.dialer.DialContext(context.Background(), "tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		conn.Close()
		if gerr != nil || uint32(got) != mark {
			t.Errorf("SO_MARK %#x, %v; want %#x", got, gerr, mark)
		}
	}
}
