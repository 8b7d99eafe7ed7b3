package benchproxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/proxy"
	"github.com/mspguest/msp/agent/redirect"
	"github.com/mspguest/msp/bpf/cgroup2"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/guest"
	"github.com/mspguest/msp/internal/loadgen"
)

// profileEnv names a file for the proxy child's CPU profile.
const profileEnv = "MSP_BENCH_CPUPROFILE"

// roleEnv selects a child role; the children are this binary re-run.
const roleEnv = "MSP_BENCH_ROLE"

const (
	listenerMark = 0x4d5352
	exemptMark   = 0x4d5353
)

// Options size the run.
type Options struct {
	Rounds  int           // interleaved direct/proxied rounds
	Seq     int           // sequential keep-alive requests per round
	NewConn int           // new-connection requests per round
	Clients int           // concurrent keep-alive clients
	Dur     time.Duration // concurrent phase per round
	Idle    int           // idle client connections for the RSS figure
	// ProxyProcs is the proxy child's GOMAXPROCS; 0 leaves Go's default.
	ProxyProcs int
}

// Main runs `msp-bench proxy` or a child role and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	switch os.Getenv(roleEnv) {
	case "proxy":
		return report(stderr, serveProxy(args))
	case "load":
		return report(stderr, runLoad(args, stdout))
	}
	fs := flag.NewFlagSet("msp-bench proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.IntVar(&o.Rounds, "rounds", 3, "interleaved direct/proxied rounds")
	fs.IntVar(&o.Seq, "seq", 2000, "sequential keep-alive requests per round")
	fs.IntVar(&o.NewConn, "newconn", 500, "new-connection requests per round")
	fs.IntVar(&o.Clients, "clients", 32, "concurrent keep-alive clients")
	fs.DurationVar(&o.Dur, "dur", 2*time.Second, "concurrent phase per round")
	fs.IntVar(&o.Idle, "idle", 1000, "idle client connections for the RSS figure")
	fs.IntVar(&o.ProxyProcs, "proxy-procs", 0, "GOMAXPROCS of the proxy process (0: Go's default, one per CPU)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "msp-bench proxy: needs root (eBPF redirector, SO_MARK)")
		return 2
	}
	t, err := run(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "msp-bench proxy: %v\n", err)
		return 1
	}
	t.print(stdout)
	return 0
}

func report(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// benchIP is this run's loopback address for the emulated endpoints.
func benchIP() string { return fmt.Sprintf("127.0.1.%d", os.Getpid()%100+100) }

// request is the workload: an IMDS instance-metadata GET.
const request = "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nUser-Agent: msp-bench\r\n\r\n"

func run(o Options, log io.Writer) (*table, error) {
	cg, err := newCgroup("msp-bench")
	if err != nil {
		return nil, err
	}
	defer removeCgroup(cg)
	emu, err := startEmulator()
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	a := emu.Addrs()

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	px := exec.Command(self, cg, a.IMDS, a.WireServer, a.HostGA)
	px.Env = append(os.Environ(), roleEnv+"=proxy")
	if o.ProxyProcs > 0 {
		px.Env = append(px.Env, "GOMAXPROCS="+strconv.Itoa(o.ProxyProcs))
	}
	px.Stderr = log
	stdin, _ := px.StdinPipe()
	out, _ := px.StdoutPipe()
	if err := px.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); px.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		return nil, fmt.Errorf("proxy child did not start: %q %v", line, err)
	}
	pid := px.Process.Pid

	t := &table{}
	if t.idleRSS, err = rssKiB(pid); err != nil {
		return nil, err
	}
	load := func(inCgroup bool, args ...string) (loadOut, error) {
		return runLoadChild(self, cg, inCgroup, append([]string{a.IMDS}, args...))
	}
	// Warm both paths up (page cache, pools, the emulator's JIT-free
	// paths) before measuring.
	for _, in := range []bool{false, true} {
		if _, err := load(in, "seq", "200"); err != nil {
			return nil, err
		}
	}
	var seq, newc [2][]time.Duration
	var rps [2][]float64
	var cpuUs []float64
	for r := 0; r < o.Rounds; r++ {
		for i, in := range []bool{false, true} {
			res, err := load(in, "seq", strconv.Itoa(o.Seq))
			if err != nil {
				return nil, err
			}
			seq[i] = append(seq[i], res.Latencies...)
		}
		for i, in := range []bool{false, true} {
			cpu0, err := cpuTime(pid)
			if err != nil {
				return nil, err
			}
			res, err := load(in, "conc", strconv.Itoa(o.Clients), o.Dur.String())
			if err != nil {
				return nil, err
			}
			cpu1, _ := cpuTime(pid)
			rps[i] = append(rps[i], res.PerSecond)
			if in && res.Requests > 0 {
				cpuUs = append(cpuUs, float64((cpu1-cpu0).Microseconds())/float64(res.Requests))
			}
		}
		for i, in := range []bool{false, true} {
			res, err := load(in, "newconn", strconv.Itoa(o.NewConn))
			if err != nil {
				return nil, err
			}
			newc[i] = append(newc[i], res.Latencies...)
		}
	}
	for i := range 2 {
		slices.Sort(seq[i])
		slices.Sort(newc[i])
		t.seqP50[i], t.seqP99[i] = pct(seq[i], 50), pct(seq[i], 99)
		t.newP50[i] = pct(newc[i], 50)
		t.rps[i] = median(rps[i])
	}
	t.cpuUs = median(cpuUs)
	t.afterRSS, _ = rssKiB(pid)

	// Idle connections through the proxy, held by a client child.
	hold := exec.Command(self, a.IMDS, "hold", strconv.Itoa(o.Idle))
	hold.Env = append(os.Environ(), roleEnv+"=load")
	f, err := os.Open(cg)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hold.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	hold.Stderr = log
	hin, _ := hold.StdinPipe()
	hout, _ := hold.StdoutPipe()
	if err := hold.Start(); err != nil {
		return nil, err
	}
	if l, err := bufio.NewReader(hout).ReadString('\n'); err != nil || !strings.HasPrefix(l, "held") {
		hin.Close()
		hold.Wait()
		return nil, fmt.Errorf("idle connections: %q %v", l, err)
	}
	time.Sleep(200 * time.Millisecond)
	held, _ := rssKiB(pid)
	hin.Close()
	hold.Wait()
	t.idleConns = o.Idle
	t.heldRSS = held
	return t, nil
}

// newCgroup creates <cgroup2 root>/<prefix>-<pid>, where the redirector
// is attached and the proxied clients run.
func newCgroup(prefix string) (string, error) {
	root, err := cgroup2.Root()
	if err != nil {
		return "", err
	}
	cg := filepath.Join(root, fmt.Sprintf("%s-%d", prefix, os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup: %w", err)
	}
	return cg, nil
}

// startEmulator runs msp-hostsim on this run's loopback address with IMDS
// in audit mode: the direct (and nginx) requests are unsigned.
func startEmulator() (*hostsim.Emulator, error) {
	st := hostsim.DefaultState()
	st.Modes.IMDS = hostproto.ModeAudit
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	ip := benchIP()
	return hostsim.Start(hostsim.Config{IMDSAddr: ip + ":0", WireServerAddr: ip + ":0", HostGAAddr: ip + ":0", Initial: &st, Log: lg})
}

func removeCgroup(dir string) {
	for i := 0; i < 100; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadOut is what a load child prints.
type loadOut struct {
	Latencies []time.Duration `json:"latencies,omitempty"`
	Requests  int64           `json:"requests"`
	Errors    int64           `json:"errors"`
	PerSecond float64         `json:"perSecond"`
}

func runLoadChild(self, cg string, inCgroup bool, args []string) (loadOut, error) {
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), roleEnv+"=load")
	if inCgroup {
		f, err := os.Open(cg)
		if err != nil {
			return loadOut{}, err
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return loadOut{}, fmt.Errorf("load %v: %w: %s", args, err, stderr.String())
	}
	var o loadOut
	if err := json.Unmarshal(b, &o); err != nil {
		return loadOut{}, fmt.Errorf("load %v output: %w", args, err)
	}
	if o.Errors > 0 {
		return o, fmt.Errorf("load %v (cgroup %v): %d of %d requests failed", args, inCgroup, o.Errors, o.Requests)
	}
	return o, nil
}

// runLoad is the client child: ADDR seq N | newconn N | conc CLIENTS DUR | hold N.
func runLoad(args []string, stdout io.Writer) error {
	if len(args) < 3 {
		return fmt.Errorf("load: want ADDR MODE ARGS, got %q", args)
	}
	addr, mode := args[0], args[1]
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return fmt.Errorf("load %s: count %q: %w", mode, args[2], err)
	}
	req := []byte(request)
	var res loadgen.Result
	switch mode {
	case "seq":
		res, err = loadgen.Sequential(addr, req, n)
	case "newconn":
		res, err = loadgen.NewConnEach(addr, req, n)
	case "conc":
		if len(args) < 4 {
			return errors.New("load conc: want CLIENTS DURATION")
		}
		d, perr := time.ParseDuration(args[3])
		if perr != nil {
			return perr
		}
		res, err = loadgen.Concurrent(addr, req, n, d)
	case "hold":
		release := make(chan struct{})
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() { done <- loadgen.Hold(addr, req, n, release, ready) }()
		select {
		case err := <-done:
			return err
		case <-ready:
		}
		fmt.Fprintln(stdout, "held")
		io.Copy(io.Discard, os.Stdin)
		close(release)
		return <-done
	default:
		return fmt.Errorf("load: unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(loadOut{Latencies: res.Latencies, Requests: res.Requests, Errors: res.Errors, PerSecond: res.PerSecond()})
}

// serveProxy is the proxy child: CGROUP IMDS WIRESERVER HOSTGA. It runs
// the redirector and the proxy until its stdin closes.
func serveProxy(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("proxy: want CGROUP IMDS WIRESERVER HOSTGA, got %q", args)
	}
	addrs := map[hostproto.Endpoint]netip.AddrPort{}
	endpoints := map[netip.AddrPort]hostproto.Endpoint{}
	for i, ep := range []hostproto.Endpoint{hostproto.IMDS, hostproto.WireServer, hostproto.HostGAPlugin} {
		a, err := netip.ParseAddrPort(args[1+i])
		if err != nil {
			return err
		}
		addrs[ep], endpoints[a] = a, ep
	}
	var red *redirect.Redirector
	px, err := proxy.New(proxy.Config{
		Addr: "127.0.0.1:0", ListenerMark: listenerMark, ExemptMark: exemptMark,
		Records: recordsFunc(func(p netip.AddrPort) (rec, bool, error) { return red.Take(p) }), Endpoints: endpoints,
	})
	if err != nil {
		return err
	}
	ln, err := px.Listen()
	if err != nil {
		return err
	}
	red, err = redirect.Start(redirect.Config{Cgroup: args[0], Proxy: ln.Addr().(*net.TCPAddr).AddrPort(), Addresses: addrs, ListenerMark: listenerMark, ExemptMark: exemptMark})
	if err != nil {
		return err
	}
	defer red.Close()
	// Loading the programs parses the kernel's BTF (task identity): give
	// that garbage back before measuring idle RSS, as the daemon should
	// once after start-up.
	debug.FreeOSMemory()
	if err := red.SetModes(hostproto.Modes{IMDS: hostproto.ModeEnforce, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}); err != nil {
		return err
	}
	g := &guest.Guest{IsRoot: true}
	if _, err := g.Latch(addrs[hostproto.WireServer].String()); err != nil {
		return fmt.Errorf("latch a key: %w", err)
	}
	px.SetSigner(g.Signer)
	px.SetHostModes(hostproto.Modes{IMDS: hostproto.ModeAudit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce})
	for _, ep := range hostproto.Endpoints {
		px.SetPolicy(ep, authz.Unrestricted(hostproto.ModeEnforce))
	}
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	go px.Serve(ln)
	defer px.Close()
	fmt.Printf("ready %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}
