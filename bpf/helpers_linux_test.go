package bpf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const (
	testListenerMark = 0x4d5350 // "MSP"
	testExemptMark   = 0x4d5351
)

// requireRoot skips unless the test can load and attach programs.
func requireRoot(tb testing.TB) string {
	tb.Helper()
	root, err := Cgroup2Root()
	if os.Geteuid() != 0 || err != nil {
		tb.Skip("needs root and a cgroup2 mount; CI runs as root")
	}
	return root
}

// newCgroup creates a child cgroup for one test (never the root: ebpf.md §9)
// and removes it at cleanup.
func newCgroup(tb testing.TB) string {
	tb.Helper()
	root := requireRoot(tb)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name())
	dir := filepath.Join(root, fmt.Sprintf("msp-test-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("create test cgroup: %v", err)
	}
	tb.Cleanup(func() {
		// The clients have been waited for; the kernel may take a moment to
		// drop the dead tasks from the cgroup.
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
	})
	return dir
}

// rig is one test's loaded and attached redirector.
type rig struct {
	objs     *Objects
	links    *Links
	cgroup   string
	proxy    net.Listener // the agent's listener, marked with testListenerMark
	upstream net.Listener // a real server at the target address
	target   netip.AddrPort
}

// newRig loads the programs with opts (Proxy defaults to a fresh marked
// listener on 127.0.0.1), attaches them to a new child cgroup and checks at
// cleanup that none of the test's links or programs is left.
func newRig(tb testing.TB, opts Options) *rig {
	tb.Helper()
	r := &rig{cgroup: newCgroup(tb)}
	if !opts.Proxy.IsValid() {
		r.proxy = listen(tb, "127.0.0.1:0", testListenerMark)
		opts.Proxy = addrOf(r.proxy)
	}
	r.upstream = listen(tb, "127.0.0.169:0", 0)
	r.target = addrOf(r.upstream)
	if opts.ListenerMark == 0 {
		opts.ListenerMark = testListenerMark
	}
	objs, err := Load(opts)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	r.objs = objs
	progIDs := programIDs(tb, objs)
	links, err := objs.Attach(r.cgroup)
	if err != nil {
		objs.Close()
		tb.Fatalf("Attach: %v", err)
	}
	r.links = links
	linkIDs, err := links.IDs()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := links.Close(); err != nil {
			tb.Error(err)
		}
		if err := objs.Close(); err != nil {
			tb.Error(err)
		}
		requireGone(tb, progIDs, linkIDs)
	})
	return r
}

func programIDs(tb testing.TB, o *Objects) []ebpf.ProgramID {
	tb.Helper()
	var ids []ebpf.ProgramID
	for _, h := range hooks {
		info, err := o.program(h.name).Info()
		if err != nil {
			tb.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	return ids
}

// requireGone fails unless the programs and links no longer exist; the
// kernel frees them after an RCU grace period, so it polls briefly.
func requireGone(tb testing.TB, progs []ebpf.ProgramID, links []link.ID) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, id := range progs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				alive = append(alive, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range links {
			if l, err := link.NewFromID(id); err == nil {
				l.Close()
				alive = append(alive, fmt.Sprintf("link %d", id))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("left behind after cleanup: %s", strings.Join(alive, ", "))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listen opens a TCP listener, with SO_MARK mark when non-zero.
func listen(tb testing.TB, addr string, mark int) net.Listener {
	tb.Helper()
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
		tb.Fatalf("listen on %s: %v", addr, err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

func addrOf(ln net.Listener) netip.AddrPort {
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// client describes one client subprocess.
type client struct {
	dst    netip.AddrPort
	uid    uint32 // 0 = root
	mark   int    // SO_MARK on the client socket
	ownNet bool   // run in a new network namespace with its own listener at dst
}

// run starts the client in cgroup and returns what it saw.
func (c client) run(tb testing.TB, cgroup string) clientResult {
	tb.Helper()
	cg, err := os.Open(cgroup)
	if err != nil {
		tb.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(clientBinary)
	cmd.Env = []string{clientEnv + "=" + c.dst.String()}
	if c.mark != 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", clientMark, c.mark))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if c.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.uid, Gid: c.uid}
	}
	if c.ownNet {
		cmd.Env = append(cmd.Env, clientOwnNet+"=1")
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNET
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		tb.Fatalf("client %+v: %v: %s", c, err, errOut.String())
	}
	var res clientResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		tb.Fatalf("client output %q: %v", out.String(), err)
	}
	if res.Err != "" {
		tb.Fatalf("client %+v: %s", c, res.Err)
	}
	if res.PID != cmd.Process.Pid {
		tb.Fatalf("client reported pid %d, started %d", res.PID, cmd.Process.Pid)
	}
	return res
}

// accept returns the peer address of the next connection on ln.
func accept(tb testing.TB, ln net.Listener) netip.AddrPort {
	tb.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		tb.Fatalf("accept on %s: %v", ln.Addr(), err)
	}
	defer c.Close()
	return c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// mapped returns the v4-mapped IPv6 form of an IPv4 destination.
func mapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

func counters(tb testing.TB, o *Objects) Counters {
	tb.Helper()
	c, err := o.Counters()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
