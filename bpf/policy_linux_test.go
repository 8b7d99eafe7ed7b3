package bpf

import (
	"net/netip"
	"testing"

	"github.com/mspguest/msp/bpf/bpftest"
	"golang.org/x/sys/unix"
)

// TestTargetsLive adds and removes a target while the programs run.
func TestTargetsLive(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	direct := func(step string) {
		t.Helper()
		res := client{dst: r.target}.run(t, r.cgroup)
		if res.Errno != 0 {
			t.Fatalf("%s: connect: %v", step, unix.Errno(res.Errno))
		}
		if _, ok, _ := r.objs.Take(bpftest.Accept(t, r.upstream)); ok {
			t.Errorf("%s: a direct connection has a record", step)
		}
	}
	redirected := func(step string) {
		t.Helper()
		client{dst: r.target}.run(t, r.cgroup)
		if _, ok, err := r.objs.Take(bpftest.Accept(t, r.proxy)); !ok || err != nil {
			t.Fatalf("%s: Take = %v, %v; want a record", step, ok, err)
		}
	}

	direct("before SetTarget")
	want := map[netip.AddrPort]Target{r.target: {Endpoint: 1, Policy: FailClosed}}
	if err := r.objs.SetTargets(want); err != nil {
		t.Fatal(err)
	}
	if got, err := r.objs.Targets(); err != nil || len(got) != 1 || got[r.target] != want[r.target] {
		t.Fatalf("Targets() = %v, %v; want %v", got, err, want)
	}
	redirected("after SetTargets")
	if err := r.objs.SetTargets(nil); err != nil {
		t.Fatal(err)
	}
	direct("after removing the target")
	if err := r.objs.SetTarget(r.target, Target{Endpoint: 2}); err != nil {
		t.Fatal(err)
	}
	redirected("after SetTarget")
	if err := r.objs.DeleteTarget(r.target); err != nil {
		t.Fatal(err)
	}
	if err := r.objs.DeleteTarget(r.target); err != nil {
		t.Errorf("deleting a missing target: %v; want nil", err)
	}
	direct("after DeleteTarget")
	if c := counters(t, r.objs); c.Redirected != 2 {
		t.Errorf("Redirected = %d; want 2", c.Redirected)
	}
}

// TestFailurePolicy checks what a target's connect does when the agent is
// not listening, or something else squats on its port (ebpf.md §6.6).
func TestFailurePolicy(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		squatter bool // an unmarked listener on the proxy address
		errno    unix.Errno
	}{
		{"fail-open/no listener", FailOpen, false, 0},
		{"fail-closed/no listener", FailClosed, false, unix.EPERM},
		{"fail-open/squatter", FailOpen, true, 0},
		{"fail-closed/squatter", FailClosed, true, unix.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A port nothing listens on: bind, note it, close.
			free := bpftest.Listen(t, "127.0.0.1:0", 0)
			proxy := bpftest.AddrOf(free)
			free.Close()
			if tt.squatter {
				bpftest.Listen(t, proxy.String(), 0)
			}
			r := newRig(t, Options{Proxy: proxy})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3, Policy: tt.policy}); err != nil {
				t.Fatal(err)
			}
			for _, dst := range []netip.AddrPort{r.target, mapped(r.target)} {
				res := client{dst: dst, uid: 65534}.run(t, r.cgroup)
				if unix.Errno(res.Errno) != tt.errno {
					t.Fatalf("connect %s: errno %v; want %v", dst, unix.Errno(res.Errno), tt.errno)
				}
				if tt.errno == 0 {
					bpftest.Accept(t, r.upstream) // reached the original destination
				}
			}
			c := counters(t, r.objs)
			want := Counters{FailedOpen: 2}
			if tt.policy == FailClosed {
				want = Counters{FailedClosed: 2}
			}
			if c != want {
				t.Errorf("counters %+v; want %+v", c, want)
			}
		})
	}
}

// TestExemptMark checks that the agent's own sockets, marked with SO_MARK,
// reach the real destination (ebpf.md §6.5).
func TestExemptMark(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{ExemptMark: testExemptMark})
	if err := r.objs.SetTarget(r.target, Target{Endpoint: 1, Policy: FailClosed}); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []netip.AddrPort{r.target, mapped(r.target)} {
		res := client{dst: dst, mark: testExemptMark}.run(t, r.cgroup)
		if res.Errno != 0 || res.Peer != dst.String() {
			t.Fatalf("exempt connect to %s: errno %v, peer %s", dst, unix.Errno(res.Errno), res.Peer)
		}
		bpftest.Accept(t, r.upstream)
	}
	// Another mark is no exemption.
	client{dst: r.target, mark: testExemptMark + 1}.run(t, r.cgroup)
	bpftest.Accept(t, r.proxy)
	if c := counters(t, r.objs); c.Exempted != 2 || c.Redirected != 1 {
		t.Errorf("counters %+v; want Exempted 2, Redirected 1", c)
	}
}

// TestNetnsGuard checks the documented choice for callers in another network
// namespace: left alone by default (they reach their own loopback), refused
// with NetnsDeny (ebpf.md §6.7).
func TestNetnsGuard(t *testing.T) {
	tests := []struct {
		name   string
		policy NetnsPolicy
		errno  unix.Errno
		want   Counters
	}{
		{"pass", NetnsPass, 0, Counters{NetnsPassed: 2}},
		{"deny", NetnsDeny, unix.EPERM, Counters{NetnsDenied: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{OtherNetns: tt.policy})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
				t.Fatal(err)
			}
			for _, dst := range []netip.AddrPort{r.target, mapped(r.target)} {
				res := client{dst: dst, ownNet: true}.run(t, r.cgroup)
				if unix.Errno(res.Errno) != tt.errno {
					t.Fatalf("connect %s from a new netns: errno %v; want %v", dst, unix.Errno(res.Errno), tt.errno)
				}
				if tt.errno == 0 && res.Peer != dst.String() {
					t.Errorf("peer %s; want %s in the client's own netns", res.Peer, dst)
				}
			}
			if c := counters(t, r.objs); c != tt.want {
				t.Errorf("counters %+v; want %+v", c, tt.want)
			}
		})
	}
}
