package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
// with NetnsDeny (ebpf.md §6.7). The guard decides before any exemption
// (issue 15.4): an unprivileged user who owns a user and network namespace
// (unshare -Urn) may set any SO_MARK there, the agent's exemption mark too.
func TestNetnsGuard(t *testing.T) {
	bpftest.RequireRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("util-linux unshare(1) is needed to create a user namespace: %v", err)
	}
	ownUserns := client{uid: 65534, mark: testExemptMark, wrap: []string{unshare, "--user", "--map-root-user", "--net"}}
	tests := []struct {
		name   string
		policy NetnsPolicy
		client client
		errno  unix.Errno
		want   Counters
	}{
		{"pass", NetnsPass, client{}, 0, Counters{NetnsPassed: 2}},
		{"deny", NetnsDeny, client{}, unix.EPERM, Counters{NetnsDenied: 2}},
		{"pass/own userns, exempt mark", NetnsPass, ownUserns, 0, Counters{NetnsPassed: 2}},
		{"deny/own userns, exempt mark", NetnsDeny, ownUserns, unix.EPERM, Counters{NetnsDenied: 2}},
		// Without the guard the connect is redirected to the client's own
		// loopback, where no agent listens: the target fails closed.
		{"redirect/own userns, exempt mark", NetnsRedirect, ownUserns, unix.EPERM, Counters{FailedClosed: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{OtherNetns: tt.policy, ExemptMark: testExemptMark})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 1, Policy: FailClosed}); err != nil {
				t.Fatal(err)
			}
			for _, dst := range []netip.AddrPort{r.target, mapped(r.target)} {
				c := tt.client
				c.dst, c.ownNet = dst, true
				res := c.run(t, r.cgroup)
				if unix.Errno(res.Errno) != tt.errno {
					t.Fatalf("connect %s from a new netns (mark %#x): errno %v; want %v", dst, c.mark, unix.Errno(res.Errno), tt.errno)
				}
				if tt.errno == 0 && res.Peer != dst.String() {
					t.Errorf("peer %s; want %s in the client's own netns", res.Peer, dst)
				}
			}
			if c := counters(t, r.objs); c != tt.want {
				t.Errorf("counters %+v; want %+v (never Exempted)", c, tt.want)
			}
		})
	}
}

// TestLeftAlone is issue 16.1: connections that only resemble a target are
// never touched. Each reaches a real listener at its own destination, and
// the programs count nothing.
func TestLeftAlone(t *testing.T) {
	tests := []struct {
		name string
		// dst returns the destination and a function that checks the
		// connection arrived there, given the client's source address.
		dst func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(src string))
		udp bool
	}{
		{"IPv6 ULA ending in the target address", func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(string)) {
			return listenOnLo(t, withSuffix(t, "fd6d:7370:7465:7374::", target.Addr()), target.Port())
		}, false},
		{"IPv6 zero prefix, not v4-mapped, ending in the target address", func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(string)) {
			// ::4d53:<pid>:a.b.c.d — user_ip6[0..1] are 0 as in a
			// v4-mapped address, but user_ip6[2] is not 0xffff.
			return listenOnLo(t, withSuffix(t, fmt.Sprintf("::4d53:%x:0:0", os.Getpid()&0xffff), target.Addr()), target.Port())
		}, false},
		{"UDP to the target", func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(string)) {
			return target, udpListener(t, target)
		}, true},
		{"UDP to the v4-mapped target", func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(string)) {
			return mapped(target), udpListener(t, target)
		}, true},
		{"other port on the target address", func(t *testing.T, target netip.AddrPort) (netip.AddrPort, func(string)) {
			ln := bpftest.Listen(t, target.Addr().String()+":0", 0)
			return bpftest.AddrOf(ln), acceptFrom(t, ln)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3, Policy: FailClosed}); err != nil {
				t.Fatal(err)
			}
			dst, arrived := tt.dst(t, r.target)
			res := client{dst: dst, udp: tt.udp}.run(t, r.cgroup)
			if res.Errno != 0 || res.Peer != dst.String() {
				t.Fatalf("connect %s: errno %v, peer %s; want it untouched", dst, unix.Errno(res.Errno), res.Peer)
			}
			arrived(res.Local)
			if c := counters(t, r.objs); c != (Counters{}) {
				t.Errorf("counters %+v; want none", c)
			}
		})
	}
}

// withSuffix returns prefix with its last 32 bits replaced by an IPv4
// address.
func withSuffix(t *testing.T, prefix string, v4 netip.Addr) netip.Addr {
	t.Helper()
	b := netip.MustParseAddr(prefix).As16()
	tail := v4.As4()
	copy(b[12:], tail[:])
	a := netip.AddrFrom16(b)
	if a.Is4In6() {
		t.Fatalf("%s is v4-mapped", a)
	}
	return a
}

// listenOnLo adds a to lo (removed at cleanup), listens on it and returns
// the listener's address and an arrival check.
func listenOnLo(t *testing.T, a netip.Addr, port uint16) (netip.AddrPort, func(string)) {
	t.Helper()
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	cidr := a.String() + "/128"
	if err := ip("-6", "addr", "add", cidr, "dev", "lo", "nodad"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ip("-6", "addr", "del", cidr, "dev", "lo"); err != nil {
			t.Error(err)
		}
	})
	ln, err := net.Listen("tcp6", netip.AddrPortFrom(a, port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// The kernel installs the address's local route asynchronously (after
	// DAD, skipped or not): dial from here, outside the test cgroup, until
	// it works.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp6", ln.Addr().String())
		if err == nil {
			c.Close()
			bpftest.Accept(t, ln)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on lo is not reachable: %v", a, err)
		}
	}
	return bpftest.AddrOf(ln), acceptFrom(t, ln)
}

// acceptFrom returns a check that the next connection on ln comes from src.
func acceptFrom(t *testing.T, ln net.Listener) func(string) {
	return func(src string) {
		t.Helper()
		if peer := bpftest.Accept(t, ln); peer.String() != src {
			t.Errorf("%s accepted a connection from %s; want %s", ln.Addr(), peer, src)
		}
	}
}

// udpListener binds a UDP socket on dst and returns a check that the
// client's datagram arrived from src.
func udpListener(t *testing.T, dst netip.AddrPort) func(string) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(src string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no datagram at %s: %v", dst, err)
		}
		if want := netip.MustParseAddrPort(src); from.Addr().Unmap() != want.Addr().Unmap() || from.Port() != want.Port() || string(buf[:n]) != clientName {
			t.Errorf("datagram %q from %s; want %q from %s", buf[:n], from, clientName, src)
		}
	}
}
