package proxy

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
)

// TestMarks: the listening socket carries the listener mark the
// redirector's fail-open check looks for, and upstream sockets the exempt
// mark that keeps them from being redirected back (ebpf.md §6.5–§6.6).
func TestMarks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting SO_MARK needs CAP_NET_ADMIN; CI runs as root")
	}
	up, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dest := up.Addr().(*net.TCPAddr).AddrPort()
	px, err := New(Config{Addr: "127.0.0.1:0", ListenerMark: 0x51, ExemptMark: 0x52,
		Records: fixedRecords{bpf.Record{Dest: dest}}, Endpoints: map[netip.AddrPort]hostproto.Endpoint{dest: hostproto.IMDS}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := px.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := soMark(t, ln.(*net.TCPListener)); got != 0x51 {
		t.Errorf("listener SO_MARK %#x; want 0x51", got)
	}
	cc := &clientConn{p: px, rec: bpf.Record{Dest: dest}}
	u, err := cc.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	if got := soMark(t, u.c); got != 0x52 {
		t.Errorf("upstream SO_MARK %#x; want 0x52", got)
	}
}

func soMark(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return mark
}
