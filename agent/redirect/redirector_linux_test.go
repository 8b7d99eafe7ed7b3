package redirect

import (
	"bufio"
	"fmt"
	"io"
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
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/bpf/bpftest"
)

const (
	clientEnv    = "MSP_REDIRECT_TEST_CLIENT" // destination for the client mode
	listenerMark = 0x4d5352
)

// TestMain doubles the test binary as a client that connects once, says
// so on stdout and holds the connection until its stdin closes, as a client
// waiting for a response does (a record lives only as long as its socket).
//
// It also doubles as an agent that is killed (agentEnv) and as a client
// that dials once and reports the outcome (dialEnv); see pin_linux_test.go.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(agentEnv); cfg != "" {
		os.Exit(runAgent(cfg))
	}
	if dst := os.Getenv(dialEnv); dst != "" {
		os.Exit(dialOnce(dst))
	}
	if dst := os.Getenv(clientEnv); dst != "" {
		c, err := net.DialTimeout("tcp4", dst, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(c.LocalAddr())
		io.Copy(io.Discard, os.Stdin)
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStartErrors needs no root: the configuration is checked first.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"bad address", Config{Addresses: map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: netip.MustParseAddrPort("[::1]:80")}}, "want an IPv4 address"},
		{"not cgroup2", Config{Cgroup: t.TempDir()}, "is not a cgroup2 directory"},
		{"no cgroup", Config{Cgroup: "/nonexistent/cgroup"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Start(tt.cfg)
			if err == nil {
				r.Close()
				t.Fatal("Start succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q; want it to mention %q", err, tt.err)
			}
		})
	}
}

// TestRedirector drives the agent-facing API against the kernel: modes
// become targets live, a client in the attached cgroup is redirected only
// while its endpoint is enabled, and Close detaches everything.
func TestRedirector(t *testing.T) {
	cg := bpftest.NewCgroup(t)

	proxy := bpftest.Listen(t, "127.0.0.1:0", listenerMark)
	imds := bpftest.Listen(t, "127.0.0.169:0", 0)
	wire := bpftest.Listen(t, "127.0.0.168:0", 0)
	addrs := map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: bpftest.AddrOf(imds), hostproto.WireServer: bpftest.AddrOf(wire), hostproto.HostGAPlugin: netip.MustParseAddrPort("127.0.0.168:32526")}
	r, err := Start(Config{Cgroup: cg, Proxy: bpftest.AddrOf(proxy), Addresses: addrs, ListenerMark: listenerMark})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			r.Close()
		}
	})

	if err := r.SetModes(hostproto.Modes{IMDS: hostproto.ModeAudit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeDisabled}); err != nil {
		t.Fatal(err)
	}
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	wantTargets := map[netip.AddrPort]bpf.Target{
		addrs[hostproto.IMDS]:       {Endpoint: kernelIMDS, Policy: bpf.FailOpen},
		addrs[hostproto.WireServer]: {Endpoint: kernelWireServer, Policy: bpf.FailClosed},
	}
	if fmt.Sprint(st.Targets) != fmt.Sprint(wantTargets) || st.Cgroup != cg {
		t.Fatalf("status %+v; want targets %v in %s", st, wantTargets, cg)
	}

	if !st.TaskInfo || st.NoTaskInfo != "" {
		t.Errorf("status TaskInfo %v (%s); want task identity on a kernel with BTF", st.TaskInfo, st.NoTaskInfo)
	}

	pid := runClient(t, cg, addrs[hostproto.IMDS])
	rec, ok, err := r.Take(bpftest.Accept(t, proxy))
	if err != nil || !ok || rec.TGID != uint32(pid) || rec.Dest != addrs[hostproto.IMDS] || rec.UID != 0 || !rec.TaskInfo || rec.EUID != 0 {
		t.Fatalf("Take = %+v, %v, %v; want pid %d (root, with task identity) to %s", rec, ok, err, pid, addrs[hostproto.IMDS])
	}

	if err := r.SetMode(hostproto.IMDS, hostproto.ModeDisabled); err != nil {
		t.Fatal(err)
	}
	runClient(t, cg, addrs[hostproto.IMDS])
	if _, ok, _ := r.Take(bpftest.Accept(t, imds)); ok {
		t.Error("a disabled endpoint's connection has a record")
	}
	if st, _ := r.Status(); len(st.Targets) != 1 || st.Modes.IMDS != hostproto.ModeDisabled || st.Counters.Redirected != 1 {
		t.Errorf("status after disabling IMDS: %+v", st)
	}
	if err := r.SetMode(hostproto.Endpoint(9), hostproto.ModeAudit); err == nil {
		t.Error("SetMode of an unknown endpoint: want an error")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	requireDetached(t, cg)
}

// TestNoTaskInfo checks that Config.NoTaskInfo reaches the loader and the
// status says records carry no task identity.
func TestNoTaskInfo(t *testing.T) {
	cg := bpftest.NewCgroup(t)
	proxy := bpftest.Listen(t, "127.0.0.1:0", listenerMark)
	imds := bpftest.Listen(t, "127.0.0.169:0", 0)
	addrs := map[hostproto.Endpoint]netip.AddrPort{hostproto.IMDS: bpftest.AddrOf(imds)}
	r, err := Start(Config{Cgroup: cg, Proxy: bpftest.AddrOf(proxy), Addresses: addrs, ListenerMark: listenerMark, NoTaskInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.SetMode(hostproto.IMDS, hostproto.ModeEnforce); err != nil {
		t.Fatal(err)
	}
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.TaskInfo || !strings.Contains(st.NoTaskInfo, "NoTaskInfo") {
		t.Errorf("status TaskInfo %v (%q); want false, naming the option", st.TaskInfo, st.NoTaskInfo)
	}
	pid := runClient(t, cg, addrs[hostproto.IMDS])
	rec, ok, err := r.Take(bpftest.Accept(t, proxy))
	if err != nil || !ok || rec.TGID != uint32(pid) || rec.TaskInfo || rec.ExeIno != 0 {
		t.Fatalf("Take = %+v, %v, %v; want pid %d without task identity", rec, ok, err, pid)
	}
}

// requireDetached fails if any program is still attached to the cgroup.
func requireDetached(t *testing.T, cg string) {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, at := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect, ebpf.AttachCGroupSockOps,
		ebpf.AttachCgroupInet4GetPeername, ebpf.AttachCgroupInet6GetPeername} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Programs) != 0 {
			t.Errorf("%s: %d programs still attached after Close", at, len(res.Programs))
		}
	}
}

// runClient starts a client in cg that connects to dst and holds the
// connection until the test ends; it returns the client's pid.
func runClient(t *testing.T, cg string, dst netip.AddrPort) int {
	t.Helper()
	p := spawn(t, cg, clientEnv+"="+dst.String())
	t.Cleanup(func() {
		p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("client to %s: %v: %s", dst, err, p.stderr.String())
		}
	})
	if _, err := p.stdout.ReadString('\n'); err != nil {
		t.Fatalf("client to %s did not connect: %v", dst, err)
	}
	return p.cmd.Process.Pid
}

// child is a started re-execution of the test binary.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *strings.Builder
}

// spawn starts the test binary with only env in its environment, in the
// cgroup cg ("" = the test's own).
func spawn(t *testing.T, cg, env string) child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{env}
	if cg != "" {
		f, err := os.Open(cg)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	p := child{cmd: cmd, stderr: new(strings.Builder)}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdout = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}
