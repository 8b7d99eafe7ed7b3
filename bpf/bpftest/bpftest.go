// Package bpftest is test support for the packages that attach the eBPF
// programs (bpf, agent/redirect, and the proxy's tests): a skip for
// non-root runs (as root, anything missing is a failure), a child cgroup per
// test, marked loopback listeners, a private bpffs mount per test.
//
// Tests never attach to the root cgroup (ebpf.md §9): NewCgroup makes a
// child that is removed at cleanup. It imports no eBPF code, so package
// bpf's own tests can use it.
package bpftest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/bpf/cgroup2"
	"golang.org/x/sys/unix"
)

// RequireRoot skips a test that loads and attaches programs when it does
// not run as root, and returns the cgroup2 mount. As root a missing cgroup2
// mount fails the test: CI runs as root, and a skip there would hide a
// broken machine (issue 16.3).
func RequireRoot(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to load eBPF programs (CAP_BPF, CAP_NET_ADMIN); CI runs as root, so run: sudo go test")
	}
	root, err := cgroup2.Root()
	if err != nil {
		tb.Fatalf("running as root but cannot attach eBPF programs: %v", err)
	}
	return root
}

// NewCgroup creates a child cgroup for one test (never the root) and
// removes it at cleanup. It skips or fails like RequireRoot.
func NewCgroup(tb testing.TB) string {
	tb.Helper()
	root := RequireRoot(tb)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name())
	dir := filepath.Join(root, fmt.Sprintf("msp-test-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("create test cgroup: %v", err)
	}
	tb.Cleanup(func() { RemoveCgroup(tb, dir) })
	return dir
}

// RemoveCgroup removes a test cgroup once its clients have been waited
// for, giving the kernel up to 5 s to drop their dead tasks from it.
func RemoveCgroup(tb testing.TB, dir string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("remove test cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Listen opens a TCP listener on a loopback address, with SO_MARK mark
// when non-zero, closed at cleanup.
func Listen(tb testing.TB, addr string, mark int) net.Listener {
	tb.Helper()
	ln, err := ListenMarked(addr, mark)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// ListenMarked is Listen for a process without a testing.TB (a test
// binary re-executed as an agent).
func ListenMarked(addr string, mark int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// MountBPFFS mounts a private bpffs instance on a new temporary directory
// and unmounts it at cleanup, which drops whatever a test pinned there
// (never /sys/fs/bpf). It skips or fails like RequireRoot.
func MountBPFFS(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)
	dir := tb.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount a bpffs instance on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}

// AddrOf returns a TCP listener's address.
func AddrOf(ln net.Listener) netip.AddrPort {
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// Accept returns the peer address of the next connection on ln (within 5 s)
// and closes the connection.
func Accept(tb testing.TB, ln net.Listener) netip.AddrPort {
	tb.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		tb.Fatalf("accept on %s: %v", ln.Addr(), err)
	}
	defer c.Close()
	return c.RemoteAddr().(*net.TCPAddr).AddrPort()
}
