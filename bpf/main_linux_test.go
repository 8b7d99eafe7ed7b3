package bpf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the client: with clientEnv set it connects once,
// prints a clientResult as JSON and then holds its socket open until its
// stdin reaches EOF, as a client waiting for a response would. Tests start it
// as a subprocess placed in their child cgroup, optionally as another user,
// in a new netns or behind a wrapper such as `unshare -Urn`.
const (
	clientEnv     = "MSP_BPF_TEST_CLIENT"  // destination, e.g. 127.0.0.169:80 or [::ffff:127.0.0.169]:80
	clientProto   = "MSP_BPF_TEST_PROTO"   // "udp" for a datagram socket (default TCP)
	clientMark    = "MSP_BPF_TEST_MARK"    // SO_MARK to set before connecting
	clientOwnNet  = "MSP_BPF_TEST_OWNNET"  // "1": bring lo up and listen on the destination first (new netns)
	clientBind    = "MSP_BPF_TEST_BIND"    // source address to bind before connecting, e.g. 127.0.0.1:40000
	clientAbandon = "MSP_BPF_TEST_ABANDON" // "rst" or "fin": give up after abandonWait and close the socket before reporting
	clientResUID  = "MSP_BPF_TEST_RESUID"  // "ruid:euid": setresuid before connecting
	clientThread  = "MSP_BPF_TEST_THREAD"  // "1": connect from a thread started after the process
	clientName    = "mspclient"            // its comm
)

// abandonWait is how long an abandoning client waits for its connect.
const abandonWait = 300 * time.Millisecond

// clientBinary is the copy of the test binary that clients run: readable by
// uid 65534, unlike the 0700 go-build directory (ebpf.md §9). Set once in
// TestMain before any test runs; read-only afterwards.
var clientBinary string

type clientResult struct {
	PID        int    `json:"pid"`
	TID        int    `json:"tid"`
	UID        int    `json:"uid"`        // real uid when connecting
	EUID       int    `json:"euid"`       // effective uid when connecting
	StartTicks uint64 `json:"startTicks"` // /proc/self/stat field 22
	Errno      int    `json:"errno"`      // of connect(), 0 on success (EINPROGRESS: an abandoned connect never completed)
	Local      string `json:"local"`      // getsockname() after connect
	Peer       string `json:"peer"`       // getpeername() after connect
	Cookie     uint64 `json:"cookie"`     // SO_COOKIE of the socket
	Err        string `json:"err"`        // a setup failure
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
// one that called connect(), reports, and holds the socket until stdin
// closes.
func runClient(dst string, w io.Writer) {
	runtime.LockOSThread() // the main goroutine keeps the leader thread
	res := clientResult{PID: os.Getpid()}
	fd, err := -1, error(nil)
	connect := func() {
		res.TID = unix.Gettid()
		fd, err = connectOnce(dst, &res)
	}
	if os.Getenv(clientThread) == "1" {
		err = onLateThread(connect)
	} else {
		connect()
	}
	if err != nil {
		res.Err = err.Error()
	}
	json.NewEncoder(w).Encode(res)
	io.Copy(io.Discard, os.Stdin)
	if fd >= 0 {
		unix.Close(fd)
	}
}

// onLateThread runs f on a thread that started at least one clock tick
// after the process, so its start time differs from the leader's.
func onLateThread(f func()) error {
	leader, err := startTicks("/proc/self/stat")
	if err != nil {
		return err
	}
	time.Sleep(3 * time.Second / clockTicks)
	for range 64 {
		late := make(chan bool)
		go func() {
			// Never unlocked: when this goroutine returns, the runtime
			// ends its thread, so an early thread is used only once
			// and the next try runs on another, eventually a new one.
			runtime.LockOSThread()
			ticks, err := startTicks("/proc/thread-self/stat")
			if err != nil || ticks <= leader {
				late <- false
				return
			}
			f()
			late <- true
		}()
		if <-late {
			return nil
		}
	}
	return errors.New("no thread started later than the process")
}

// connectOnce makes the client's one connection and returns its socket, or
// -1 when it is already closed.
func connectOnce(dst string, res *clientResult) (int, error) {
	ap, err := netip.ParseAddrPort(dst)
	if err != nil {
		return -1, err
	}
	if ids := os.Getenv(clientResUID); ids != "" {
		var ruid, euid int
		if _, err := fmt.Sscanf(ids, "%d:%d", &ruid, &euid); err != nil {
			return -1, fmt.Errorf("%s=%q: %w", clientResUID, ids, err)
		}
		if err := syscall.Setresuid(ruid, euid, -1); err != nil {
			return -1, fmt.Errorf("setresuid(%d, %d): %w", ruid, euid, err)
		}
	}
	res.UID, res.EUID = unix.Getuid(), unix.Geteuid()
	if res.StartTicks, err = startTicks("/proc/self/stat"); err != nil {
		return -1, err
	}
	if os.Getenv(clientOwnNet) == "1" {
		if err := ownLoopback(ap); err != nil {
			return -1, err
		}
	}
	typ := unix.SOCK_STREAM
	if os.Getenv(clientProto) == "udp" {
		typ = unix.SOCK_DGRAM
	}
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := prepare(fd, family, res); err != nil {
		unix.Close(fd)
		return -1, err
	}
	abandon := os.Getenv(clientAbandon)
	if abandon != "" {
		err = connectAbandon(fd, sa, abandon)
	} else {
		err = unix.Connect(fd, sa)
	}
	if errno, ok := err.(unix.Errno); ok {
		res.Errno = int(errno)
	} else if err != nil {
		unix.Close(fd)
		return -1, err
	}
	if local, err := unix.Getsockname(fd); err == nil {
		res.Local = addrPort(local).String()
	}
	if abandon != "" {
		return -1, unix.Close(fd)
	}
	if res.Errno != 0 {
		return fd, nil
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	res.Peer = addrPort(peer).String()
	if typ == unix.SOCK_DGRAM {
		if _, err := unix.Write(fd, []byte(clientName)); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("send a datagram: %w", err)
		}
	}
	return fd, nil
}

// prepare applies the socket options the environment asks for.
func prepare(fd, family int, res *clientResult) error {
	var err error
	if res.Cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE); err != nil {
		return err
	}
	if m := os.Getenv(clientMark); m != "" {
		var mark int
		fmt.Sscan(m, &mark)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			return fmt.Errorf("set SO_MARK: %w", err)
		}
	}
	if b := os.Getenv(clientBind); b != "" {
		src, err := netip.ParseAddrPort(b)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if family == unix.AF_INET6 {
			src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
		}
		_, sa := sockaddr(src)
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
	}
	return nil
}

// connectAbandon starts a non-blocking connect, waits up to abandonWait for
// it and closes nothing: the caller closes the socket, after SO_LINGER 0
// for "rst" (an abort: reset, no TIME_WAIT).
func connectAbandon(fd int, sa unix.Sockaddr, how string) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	err := unix.Connect(fd, sa)
	if err == unix.EINPROGRESS {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, perr := unix.Poll(pfd, int(abandonWait/time.Millisecond)); perr != nil {
			return perr
		} else if n == 1 {
			soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if gerr != nil {
				return gerr
			}
			err = nil
			if soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	if how == "rst" {
		if lerr := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}); lerr != nil {
			return lerr
		}
	}
	return err
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// startTicks returns field 22 of a /proc stat file: the start time of the
// process (or thread) in clock ticks since boot.
func startTicks(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Field 2 (comm) may hold spaces and parentheses: count after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')' in %q", path, b)
	}
	fields := strings.Fields(string(b[i+1:])) // fields 3 onwards
	if len(fields) < 20 {
		return 0, fmt.Errorf("%s: %d fields after comm", path, len(fields))
	}
	return strconv.ParseUint(fields[22-3], 10, 64)
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
	// Left open until the client exits.
	if err := unix.Bind(ln, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().Unmap().As4()}); err != nil {
		return fmt.Errorf("listen on %s in the new netns: %w", dst, err)
	}
	return unix.Listen(ln, 8)
}
