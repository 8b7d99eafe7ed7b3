package benchproxy

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// CompareOptions size a `msp-bench compare` run.
type CompareOptions struct {
	Rounds  int           `json:"rounds"`  // interleaved rounds over the three targets
	Seq     int           `json:"seq"`     // sequential keep-alive requests per round and target
	NewConn int           `json:"newConn"` // new-connection requests per round and target
	Clients int           `json:"clients"` // concurrent keep-alive clients
	Dur     time.Duration `json:"dur"`     // concurrent phase per round and target
	// Agent is the msp-agent binary; "" means msp-agent beside this one.
	Agent string `json:"-"`
	// AgentProcs is the agent's GOMAXPROCS; 0 leaves Go's default (one
	// per CPU).
	AgentProcs int `json:"agentProcs,omitempty"`
	// Out is the directory for bench.json and bench.svg.
	Out string `json:"-"`
	// InstallNginx installs nginx-light with apt-get when nginx is missing.
	InstallNginx bool `json:"-"`
}

// Target names, in the order of the table's columns.
const (
	targetDirect = "direct"
	targetAgent  = "agent"
	targetNginx  = "nginx"
)

var targets = []string{targetDirect, targetAgent, targetNginx}

// Workload names.
const (
	workSeq     = "seq"
	workConc    = "conc"
	workNewConn = "newconn"
)

// CompareMain runs `msp-bench compare` and returns the exit code.
func CompareMain(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("msp-bench compare", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o CompareOptions
	fl.IntVar(&o.Rounds, "rounds", 5, "interleaved rounds over direct, agent and nginx")
	fl.IntVar(&o.Seq, "seq", 3000, "sequential keep-alive requests per round and target")
	fl.IntVar(&o.NewConn, "newconn", 1000, "new-connection requests per round and target")
	fl.IntVar(&o.Clients, "clients", 32, "concurrent keep-alive clients")
	fl.DurationVar(&o.Dur, "dur", 3*time.Second, "concurrent phase per round and target")
	fl.StringVar(&o.Agent, "agent", "", "msp-agent `binary` (default: msp-agent beside msp-bench)")
	fl.IntVar(&o.AgentProcs, "agent-procs", 0, "GOMAXPROCS of the agent (0: Go's default, one per CPU)")
	fl.StringVar(&o.Out, "out", ".", "`directory` for bench.json and bench.svg")
	fl.BoolVar(&o.InstallNginx, "install-nginx", true, "install nginx-light with apt-get if nginx is missing")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "msp-bench compare: needs root (the agent's eBPF redirector, cgroups, nginx)")
		return 2
	}
	if o.Rounds < 1 || o.Seq < 1 || o.NewConn < 1 || o.Clients < 1 || o.Dur <= 0 {
		fmt.Fprintln(stderr, "msp-bench compare: -rounds, -seq, -newconn, -clients and -dur must be positive")
		return 2
	}
	rep, err := Compare(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "msp-bench compare: %v\n", err)
		return 1
	}
	rep.PrintTable(stdout)
	if err := rep.WriteFiles(o.Out); err != nil {
		fmt.Fprintf(stderr, "msp-bench compare: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(o.Out, jsonName), filepath.Join(o.Out, svgName))
	return 0
}

// Compare runs the three targets in interleaved rounds and returns the
// report; progress goes to progress as one rewritten line.
func Compare(o CompareOptions, progress io.Writer) (*Report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if o.Agent == "" {
		o.Agent = filepath.Join(filepath.Dir(self), "msp-agent")
	}
	nginxBin, err := findNginx(o.InstallNginx, progress)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "msp-bench-compare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	cg, err := newCgroup("msp-bench-compare")
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

	agent, err := startAgent(o.Agent, o.AgentProcs, filepath.Join(work, "agent"), cg, a)
	if err != nil {
		return nil, err
	}
	defer agent.stop()
	ngx, err := startNginx(nginxBin, filepath.Join(work, "nginx"), a.IMDS)
	if err != nil {
		return nil, err
	}
	defer ngx.stop()

	addr := map[string]string{targetDirect: a.IMDS, targetAgent: a.IMDS, targetNginx: ngx.addr}
	procs := map[string]server{targetAgent: agent, targetNginx: ngx}
	load := func(target string, args ...string) (loadOut, error) {
		return runLoadChild(self, cg, target == targetAgent, append([]string{addr[target]}, args...))
	}
	for _, t := range targets { // warm-up: pools, page cache, the agent's first key use
		if _, err := load(t, "seq", "200"); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
	}
	rep := newReport(o)
	for t, p := range procs {
		rep.Proxies[t] = ProxyCost{IdleRSSKiB: rssOf(p.pids())}
	}
	lat := map[string]map[string][]time.Duration{}
	rps := map[string]map[string][]float64{}
	cpu := map[string][]float64{}
	for _, w := range []string{workSeq, workConc, workNewConn} {
		lat[w], rps[w] = map[string][]time.Duration{}, map[string][]float64{}
	}
	bar := &progressLine{w: progress, start: time.Now()}
	for r := range o.Rounds {
		// Rotate the order each round so that no target always runs
		// first (or right after the same neighbour).
		order := slices.Clone(targets)
		for range r % len(targets) {
			order = append(order[1:], order[0])
		}
		for _, w := range []string{workSeq, workConc, workNewConn} {
			for _, t := range order {
				bar.show(r+1, o.Rounds, w, t)
				var args []string
				switch w {
				case workSeq:
					args = []string{"seq", strconv.Itoa(o.Seq)}
				case workConc:
					args = []string{"conc", strconv.Itoa(o.Clients), o.Dur.String()}
				case workNewConn:
					args = []string{"newconn", strconv.Itoa(o.NewConn)}
				}
				var before time.Duration
				p := procs[t]
				if p != nil {
					before = cpuOf(p.pids())
				}
				res, err := load(t, args...)
				if err != nil {
					bar.done()
					return nil, fmt.Errorf("%s: %w", t, err)
				}
				if p != nil && w == workConc && res.Requests > 0 {
					used := cpuOf(p.pids()) - before
					cpu[t] = append(cpu[t], float64(used.Microseconds())/float64(res.Requests))
				}
				lat[w][t] = append(lat[w][t], res.Latencies...)
				rps[w][t] = append(rps[w][t], res.PerSecond)
			}
		}
	}
	bar.done()
	for t, p := range procs {
		pc := rep.Proxies[t]
		pc.CPUPerRequestUs = median(cpu[t])
		pc.RSSKiB = rssOf(p.pids())
		pc.Processes = len(p.pids())
		rep.Proxies[t] = pc
	}
	for _, w := range rep.Workloads {
		for _, t := range targets {
			l := lat[w.Name][t]
			slices.Sort(l)
			w.Targets[t] = figuresOf(l, median(rps[w.Name][t]))
			w.latencies[t] = l
		}
	}
	rep.Machine = machineOf(nginxBin)
	rep.evaluate()
	return rep, nil
}

// server is a proxy process tree measured from /proc.
type server interface {
	pids() []int
	stop()
}

func cpuOf(pids []int) time.Duration {
	var sum time.Duration
	for _, p := range pids {
		if c, err := cpuTime(p); err == nil {
			sum += c
		}
	}
	return sum
}

func rssOf(pids []int) int {
	sum := 0
	for _, p := range pids {
		if r, err := rssKiB(p); err == nil {
			sum += r
		}
	}
	return sum
}

// progressLine rewrites one line on the terminal while the run goes.
type progressLine struct {
	w     io.Writer
	start time.Time
}

var workTitle = map[string]string{workSeq: "sequential keep-alive", workConc: "concurrent keep-alive", workNewConn: "new connection per request"}

func (p *progressLine) show(round, rounds int, work, target string) {
	fmt.Fprintf(p.w, "\rmsp-bench compare: round %d/%d  %-26s -> %-6s  %4.0fs\x1b[K", round, rounds, workTitle[work], target, time.Since(p.start).Seconds())
}

func (p *progressLine) done() {
	fmt.Fprintf(p.w, "\rmsp-bench compare: measured in %.0fs\x1b[K\n", time.Since(p.start).Seconds())
}

// Output files.
const (
	jsonName = "bench.json"
	svgName  = "bench.svg"
)

// WriteFiles writes bench.json and bench.svg into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, jsonName), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, svgName), r.SVG(), fs.FileMode(0o644))
}
