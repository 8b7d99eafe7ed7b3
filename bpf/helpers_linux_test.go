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
	"sync"
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
	dst     netip.AddrPort
	udp     bool           // a datagram socket instead of TCP
	uid     uint32         // 0 = root
	resuid  string         // "ruid:euid" set by the client itself before connecting
	thread  bool           // connect from a thread started after the process
	mark    int            // SO_MARK on the client socket
	bind    netip.AddrPort // source address, if set
	abandon string         // "rst" or "fin": give up and close before reporting
	ownNet  bool           // run in a new network namespace with its own listener at dst
	wrap    []string       // command that runs the client, e.g. unshare -Urn
}

// run starts the client in cgroup and returns what it saw. The client holds
// its socket open until the test ends (or an abandoning client has closed
// it already).
func (c client) run(tb testing.TB, cgroup string) clientResult {
	tb.Helper()
	res, _ := c.start(tb, cgroup)
	return res
}

// start is run that also returns a function that makes the client close
// its socket and exit, and waits for it; cleanup calls it too.
func (c client) start(tb testing.TB, cgroup string) (clientResult, func()) {
	tb.Helper()
	cg, err := os.Open(cgroup)
	if err != nil {
		tb.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(clientBinary)
	if len(c.wrap) > 0 {
		cmd = exec.Command(c.wrap[0], append(c.wrap[1:], clientBinary)...)
	}
	cmd.Env = []string{clientEnv + "=" + c.dst.String()}
	for _, kv := range [][2]string{
		{clientProto, map[bool]string{true: "udp"}[c.udp]},
		{clientMark, map[bool]string{true: fmt.Sprint(c.mark)}[c.mark != 0]},
		{clientBind, map[bool]string{true: c.bind.String()}[c.bind.IsValid()]},
		{clientAbandon, c.abandon},
		{clientResUID, c.resuid},
		{clientThread, map[bool]string{true: "1"}[c.thread]},
		{clientOwnNet, map[bool]string{true: "1"}[c.ownNet]},
	} {
		if kv[1] != "" {
			cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if c.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.uid, Gid: c.uid}
	}
	if c.ownNet && len(c.wrap) == 0 {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNET
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start client %+v: %v", c, err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				tb.Errorf("client %+v: %v: %s", c, err, errOut.String())
			}
		})
	}
	tb.Cleanup(release)
	var res clientResult
	if err := json.NewDecoder(stdout).Decode(&res); err != nil {
		release()
		tb.Fatalf("client %+v: no result (%v): %s", c, err, errOut.String())
	}
	if res.Err != "" {
		tb.Fatalf("client %+v: %s", c, res.Err)
	}
	if res.PID != cmd.Process.Pid && len(c.wrap) == 0 {
		tb.Fatalf("client reported pid %d, started %d", res.PID, cmd.Process.Pid)
	}
	return res, release
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
