package bpf

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the client: with clientEnv set it connects once
// and prints a clientResult as JSON. Tests start it as a subprocess placed in
// their child cgroup, optionally as another user or in a new netns.
const (
	clientEnv    = "MSP_BPF_TEST_CLIENT" // destination, e.g. 127.0.0.169:80 or [::ffff:127.0.0.169]:80
	clientMark   = "MSP_BPF_TEST_MARK"   // SO_MARK to set before connecting
	clientOwnNet = "MSP_BPF_TEST_OWNNET" // "1": bring lo up and listen on the destination first (new netns)
	clientName   = "mspclient"           // its comm
)

// clientBinary is the copy of the test binary that clients run: readable by
// uid 65534, unlike the 0700 go-build directory (ebpf.md §9). Set once in
// TestMain before any test runs; read-only afterwards.
var clientBinary string

type clientResult struct {
	PID    int    `json:"pid"`
	TID    int    `json:"tid"`
	Errno  int    `json:"errno"`  // of connect(), 0 on success
	Peer   string `json:"peer"`   // getpeername() after connect
	Cookie uint64 `json:"cookie"` // SO_COOKIE of the socket
	Err    string `json:"err"`    // a setup failure
}

func TestMain(m *testing.M) {
	if dst := os.Getenv(clientEnv); dst != "" {
		runClient(dst, os.Stdout)
		return
	}
	dir, err := os.MkdirTemp("", "msp-bpf-client-")
	if err == nil {
		clientBinary = filepath.Join(dir, clientName)
		err = copyExecutable(clientBinary)
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bpf tests: prepare client binary:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyExecutable(dst string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// runClient connects to dst from a locked thread so the reported tid is the
// one that called connect().
func runClient(dst string, w io.Writer) {
	runtime.LockOSThread()
	res := clientResult{PID: os.Getpid(), TID: unix.Gettid()}
	if err := connectOnce(dst, &res); err != nil {
		res.Err = err.Error()
	}
	json.NewEncoder(w).Encode(res)
}

func connectOnce(dst string, res *clientResult) error {
	ap, err := netip.ParseAddrPort(dst)
	if err != nil {
		return err
	}
	if os.Getenv(clientOwnNet) == "1" {
		if err := ownLoopback(ap); err != nil {
			return err
		}
	}
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	if ap.Addr().Is6() {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if m := os.Getenv(clientMark); m != "" {
		var mark int
		fmt.Sscan(m, &mark)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			return fmt.Errorf("set SO_MARK: %w", err)
		}
	}
	if res.Cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE); err != nil {
		return err
	}
	if err := unix.Connect(fd, sa); err != nil {
		res.Errno = int(err.(unix.Errno))
		return nil
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return err
	}
	switch p := peer.(type) {
	case *unix.SockaddrInet4:
		res.Peer = netip.AddrPortFrom(netip.AddrFrom4(p.Addr), uint16(p.Port)).String()
	case *unix.SockaddrInet6:
		res.Peer = netip.AddrPortFrom(netip.AddrFrom16(p.Addr), uint16(p.Port)).String()
	}
	return nil
}

// ownLoopback brings lo up in a fresh network namespace and listens on the
// destination there, so a connect that is left alone succeeds.
func ownLoopback(dst netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// Left open until exit: the process ends right after connecting.
	if err := unix.Bind(ln, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().Unmap().As4()}); err != nil {
		return fmt.Errorf("listen on %s in the new netns: %w", dst, err)
	}
	return unix.Listen(ln, 8)
}
