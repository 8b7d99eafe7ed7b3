package bpf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/bpftest"
	"golang.org/x/sys/unix"
)

const (
	testListenerMark = 0x4d5350 // "MSP"
	testExemptMark   = 0x4d5351
)

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
	r := &rig{cgroup: bpftest.NewCgroup(tb)}
	if !opts.Proxy.IsValid() {
		r.proxy = bpftest.Listen(tb, "127.0.0.1:0", testListenerMark)
		opts.Proxy = bpftest.AddrOf(r.proxy)
	}
	r.upstream = bpftest.Listen(tb, "127.0.0.169:0", 0)
	r.target = bpftest.AddrOf(r.upstream)
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
