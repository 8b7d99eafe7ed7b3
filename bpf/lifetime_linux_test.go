package bpf

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/mspguest/msp/bpf/bpftest"
	"golang.org/x/sys/unix"
)

// TestAbandonedRecord is issue 15.3: a redirected connection that the proxy
// never accepts leaves no record behind, so a user who binds the same
// source port and connects straight to the proxy is not served as the
// original caller. The redirected client is root; the impostor is nobody.
func TestAbandonedRecord(t *testing.T) {
	bpftest.RequireRoot(t)
	tests := []struct {
		name     string
		backlog  int    // of the proxy listener; 0 with one queued connection drops every SYN
		abandon  string // how the client gives up
		errno    unix.Errno
		impostor bool // the source port is free again afterwards (no TIME_WAIT)
	}{
		{"backlog full/gave up in SYN_SENT", 0, "rst", unix.EINPROGRESS, true},
		{"not accepted/aborted", 8, "rst", 0, true},
		{"not accepted/closed", 8, "fin", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy, lfd := rawListener(t, tt.backlog)
			r := newRig(t, Options{Proxy: proxy})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 1}); err != nil {
				t.Fatal(err)
			}
			if tt.backlog == 0 {
				// This test process is outside the attached cgroup: a
				// direct connection that fills the accept queue.
				filler, err := net.Dial("tcp4", proxy.String())
				if err != nil {
					t.Fatal(err)
				}
				defer filler.Close()
			}
			res := client{dst: r.target, abandon: tt.abandon, bind: netip.AddrPortFrom(sourceIP(), 0)}.run(t, r.cgroup)
			if unix.Errno(res.Errno) != tt.errno {
				t.Fatalf("abandoned connect: errno %v; want %v", unix.Errno(res.Errno), tt.errno)
			}
			src := netip.MustParseAddrPort(res.Local)
			if c := counters(t, r.objs); c.Redirected != 1 {
				t.Fatalf("counters %+v; want the connect redirected", c)
			}
			requireNoRecord(t, r.objs, src, res.Cookie)
			if !tt.impostor {
				return
			}
			if tt.backlog == 0 {
				drain(t, lfd)
			}
			imp := client{dst: proxy, uid: 65534, bind: src}.run(t, r.cgroup)
			if imp.Errno != 0 || imp.Local != src.String() {
				t.Fatalf("impostor: errno %v from %s; want a connection from %s", unix.Errno(imp.Errno), imp.Local, src)
			}
			if rec, ok, err := r.objs.Take(src); ok || err != nil {
				t.Fatalf("Take(%s) for the impostor = %+v, %v, %v; want no record", src, rec, ok, err)
			}
		})
	}
}

// TestStaleRecordDirectConnect checks the second guard on its own: a
// by_port record that outlived its socket (planted here) is wiped when a
// connection to the proxy that was not redirected starts from its address.
func TestStaleRecordDirectConnect(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	free := bpftest.Listen(t, netip.AddrPortFrom(sourceIP(), 0).String(), 0)
	src := bpftest.AddrOf(free)
	free.Close()
	key := proxyPortKey{LocalIp4: ip4Key(src.Addr()), LocalPort: uint32(src.Port())}
	stale := proxyConnRecord{Tgid: 1, Uid: 0, OrigIp4: ip4Key(r.target.Addr()), OrigPort: portKey(r.target.Port())}
	if err := r.objs.objs.ByPort.Update(&key, &stale, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	// A connection elsewhere from that address leaves the record alone:
	// only the proxy connection from it can own the record.
	client{dst: r.target, bind: src}.run(t, r.cgroup)
	bpftest.Accept(t, r.upstream)
	if !hasKey(t, r.objs.objs.ByPort, &key) {
		t.Fatal("a connection to another destination removed the record")
	}
	res := client{dst: bpftest.AddrOf(r.proxy), uid: 65534, bind: src}.run(t, r.cgroup)
	if res.Errno != 0 {
		t.Fatalf("direct connect: %v", unix.Errno(res.Errno))
	}
	if rec, ok, err := r.objs.Take(bpftest.Accept(t, r.proxy)); ok || err != nil {
		t.Fatalf("Take for the direct connection = %+v, %v, %v; want no record", rec, ok, err)
	}
}

// TestRecordLivesWithSocket checks that a taken record's cookie entry,
// which getpeername reads, stays while the client's socket lives and goes
// when it closes, for AF_INET and v4-mapped AF_INET6 sockets.
func TestRecordLivesWithSocket(t *testing.T) {
	for _, v4mapped := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "v4-mapped"}[v4mapped], func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
				t.Fatal(err)
			}
			dst := r.target
			if v4mapped {
				dst = mapped(dst)
			}
			res, release := client{dst: dst}.start(t, r.cgroup)
			peer := bpftest.Accept(t, r.proxy)
			if _, ok, err := r.objs.Take(peer); !ok || err != nil {
				t.Fatalf("Take(%s) = %v, %v; want a record", peer, ok, err)
			}
			if !hasKey(t, r.objs.objs.ByCookie, &res.Cookie) {
				t.Fatal("the cookie entry is gone while the client's socket lives")
			}
			release()
			requireNoRecord(t, r.objs, peer, res.Cookie)
		})
	}
}

// sourceIP is this test process's own loopback source address. Sockets
// that connect() from 127.0.0.1 share ephemeral ports across destinations,
// so on a busy machine another process may hold the port a test wants to
// bind again; nothing else uses this address.
func sourceIP() netip.Addr {
	pid := os.Getpid()
	return netip.AddrFrom4([4]byte{127, 77, byte(pid >> 8), byte(pid)})
}

// rawListener listens on a fresh 127.0.0.1 port with the test listener
// mark and the given backlog, and never accepts unless told to (drain).
func rawListener(t *testing.T, backlog int) (netip.AddrPort, int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, testListenerMark); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return addrPort(sa), fd
}

// drain accepts and closes one queued connection of a rawListener.
func drain(t *testing.T, fd int) {
	t.Helper()
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	unix.Close(nfd)
}

// requireNoRecord waits briefly (the kernel finishes closing a socket
// asynchronously) until neither map holds the socket's entries.
func requireNoRecord(t *testing.T, o *Objects, src netip.AddrPort, cookie uint64) {
	t.Helper()
	key := proxyPortKey{LocalIp4: ip4Key(src.Addr()), LocalPort: uint32(src.Port())}
	deadline := time.Now().Add(3 * time.Second)
	for hasKey(t, o.objs.ByPort, &key) || hasKey(t, o.objs.ByCookie, &cookie) {
		if time.Now().After(deadline) {
			t.Fatalf("the closed socket's record is still in by_port[%s] or by_cookie[%d]", src, cookie)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasKey(t *testing.T, m *ebpf.Map, key any) bool {
	t.Helper()
	var rec proxyConnRecord
	err := m.Lookup(key, &rec)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
