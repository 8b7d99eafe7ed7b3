package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/config"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/provision"
	"github.com/mspguest/msp/agent/status"
)

// Check is one line of the report.
type Check struct {
	Name   string
	OK     bool
	Detail string // what was found
	Fix    string // what to do when it failed
}

// System is what the machine checks read; tests and other platforms
// supply their own.
type System struct {
	KernelRelease func() (string, error)
	Cgroup2Root   func() (string, error)
	ProbeKernel   func() error // program and map types, helpers, hooks
	IsBPFFS       func(path string) (bool, error)
}

// MinKernel is the oldest kernel with every hook the redirector uses
// (cgroup getpeername, 5.8; osgate.ProbeKernel).
const MinKernel = "5.8"

// statusStale is how old status.json may be: the agent rewrites it every
// 60 s.
const statusStale = 3 * time.Minute

// Run runs every check against the agent that cfg describes.
func Run(ctx context.Context, cfg *config.Config, sys System) []Check {
	var out []Check
	out = append(out, kernelCheck(sys), cgroupCheck(cfg, sys), ebpfCheck(sys), bpffsCheck(cfg, sys))
	agent := provisionCheck(ctx, cfg)
	out = append(out, agent)
	doc, stCheck := statusCheck(cfg, agent.OK)
	out = append(out, stCheck)
	m, mErr := readMetrics(ctx, cfg)
	out = append(out, modesCheck(m, mErr, doc), keyCheck(m, mErr, doc))
	out = append(out, interceptionCheck(ctx, cfg, m))
	return out
}

func kernelCheck(sys System) Check {
	c := Check{Name: "kernel", Fix: "upgrade to Linux " + MinKernel + " or newer (the distribution's current kernel)"}
	rel, err := sys.KernelRelease()
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	c.OK = versionAtLeast(rel, MinKernel)
	c.Detail = fmt.Sprintf("Linux %s (needs %s or newer)", rel, MinKernel)
	return c
}

// versionAtLeast compares the leading major.minor of a kernel release.
func versionAtLeast(release, min string) bool {
	parse := func(s string) (int, int) {
		s, _, _ = strings.Cut(s, "-")
		f := strings.SplitN(s, ".", 3)
		maj, _ := strconv.Atoi(f[0])
		minor := 0
		if len(f) > 1 {
			minor, _ = strconv.Atoi(f[1])
		}
		return maj, minor
	}
	a, b := parse(release)
	x, y := parse(min)
	return a > x || (a == x && b >= y)
}

func cgroupCheck(cfg *config.Config, sys System) Check {
	c := Check{Name: "cgroup2", Fix: "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1) so that cgroup2 is mounted"}
	root, err := sys.Cgroup2Root()
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	c.OK, c.Detail = true, "mounted at "+root
	if cfg.Cgroup != "" {
		if fi, err := os.Stat(cfg.Cgroup); err != nil || !fi.IsDir() {
			c.OK = false
			c.Detail = fmt.Sprintf("mounted at %s; the configured cgroup %s is missing", root, cfg.Cgroup)
			c.Fix = "create the cgroup or correct \"cgroup\" in " + cfgName(cfg)
		} else {
			c.Detail += "; agent attaches to " + cfg.Cgroup
		}
	}
	return c
}

func ebpfCheck(sys System) Check {
	c := Check{Name: "ebpf", Fix: "run as root; the kernel needs cgroup sock_addr and sock_ops programs and their helpers (Linux " + MinKernel + "+)"}
	if err := sys.ProbeKernel(); err != nil {
		c.Detail = err.Error()
		return c
	}
	c.OK, c.Detail = true, "cgroup sock_addr (connect4/6, getpeername4/6) and sock_ops programs, maps and helpers load"
	return c
}

func bpffsCheck(cfg *config.Config, sys System) Check {
	c := Check{Name: "bpffs", Fix: "mount it: mount -t bpf bpf " + filepath.Dir(cfg.BPFFSDir) + " (msp-agent --prepare does)"}
	for _, p := range []string{cfg.BPFFSDir, filepath.Dir(cfg.BPFFSDir)} {
		ok, err := sys.IsBPFFS(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			c.Detail = err.Error()
			return c
		}
		if !ok {
			c.Detail = p + " is not on a bpf filesystem"
			return c
		}
		c.OK = true
		if p == cfg.BPFFSDir {
			c.Detail = "pin directory " + p + " on bpffs"
		} else {
			c.Detail = "bpffs at " + p + "; no pin directory yet (the agent has not run)"
		}
		return c
	}
	c.Detail = "neither " + cfg.BPFFSDir + " nor its parent exists"
	return c
}

func provisionCheck(ctx context.Context, cfg *config.Config) Check {
	c := Check{Name: "agent", Fix: "start it and read why it stopped: systemctl start msp-agent; journalctl -u msp-agent; msp-agent --status"}
	st, err := provision.Query(ctx, cfg.Listen.String())
	switch {
	case err != nil:
		c.Detail = err.Error()
	case st.Finished && st.ErrorMessage != "":
		c.Detail = "provisioning finished with an error: " + st.ErrorMessage
		c.Fix = "see status.json and journalctl -u msp-agent for the failing module"
	case !st.Finished:
		c.Detail = "answering on " + cfg.Listen.String() + " but not provisioned (no key latched yet)"
		c.Fix = "wait, or see the key latch message in status.json and journalctl -u msp-agent"
	default:
		c.OK, c.Detail = true, "provisioned; /provision answers on "+cfg.Listen.String()
	}
	return c
}

// statusCheck reads status.json; the agent leaves it behind when it
// stops, so a document is only good while the agent answers.
func statusCheck(cfg *config.Config, agentUp bool) (*status.Document, Check) {
	path := filepath.Join(cfg.LogDir, status.FileName)
	c := Check{Name: "status", Fix: "the agent writes " + path + " every minute: is it running with this configuration (" + cfgName(cfg) + ")?"}
	doc, err := status.ReadFile(path)
	if err != nil {
		c.Detail = err.Error()
		return nil, c
	}
	ts, err := time.Parse(status.TimestampLayout, doc.Timestamp)
	if err != nil {
		c.Detail = fmt.Sprintf("%s: timestamp %q: %v", path, doc.Timestamp, err)
		return &doc, c
	}
	age := time.Since(ts).Round(time.Second)
	pa := doc.ProxyAgentStatus
	switch {
	case age > statusStale:
		c.Detail = fmt.Sprintf("%s is %s old: the agent stopped writing it", path, age)
	case !agentUp:
		c.Detail = fmt.Sprintf("%s (%s old) says %s, but the agent does not answer now: the document is its last word", path, age, pa.Status)
		c.Fix = "start the agent (see the agent line)"
	case pa.Status != status.Success:
		c.Detail = fmt.Sprintf("%s: %s (key latch: %s; eBPF: %s; listener: %s)", path, pa.Status,
			pa.KeyLatchStatus.Message, pa.EBPFProgramStatus.Message, pa.ProxyListenerStatus.Message)
		c.Fix = "act on the module message above; journalctl -u msp-agent has the details"
	default:
		c.OK = true
		c.Detail = fmt.Sprintf("%s (%s old), agent %s: %s", pa.Status, age, pa.Version, pa.EBPFProgramStatus.Message)
	}
	return &doc, c
}

// agentMetrics are the figures doctor reads from the metrics socket.
type agentMetrics struct {
	modes  map[string]hostproto.Mode // by endpoint name
	keyAge float64                   // seconds; <0 when no key
}

func readMetrics(ctx context.Context, cfg *config.Config) (*agentMetrics, error) {
	data, err := metrics.Fetch(ctx, filepath.Join(cfg.StateDir, "metrics.sock"))
	if err != nil {
		return nil, err
	}
	return parseMetrics(data), nil
}

// parseMetrics reads msp_effective_mode{endpoint="..."} and
// msp_key_age_seconds from Prometheus text.
func parseMetrics(data []byte) *agentMetrics {
	m := &agentMetrics{modes: map[string]hostproto.Mode{}, keyAge: -1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case name == "msp_key_age_seconds":
			m.keyAge = v
		case strings.HasPrefix(name, `msp_effective_mode{endpoint="`):
			ep := strings.TrimSuffix(strings.TrimPrefix(name, `msp_effective_mode{endpoint="`), `"}`)
			m.modes[ep] = hostproto.Mode(v)
		}
	}
	return m
}

func modesCheck(m *agentMetrics, mErr error, doc *status.Document) Check {
	c := Check{Name: "modes", Fix: "start the agent; as root, mspctl metrics must answer"}
	switch {
	case m != nil && len(m.modes) > 0:
		var parts []string
		for _, ep := range hostproto.Endpoints {
			if md, ok := m.modes[ep.String()]; ok {
				parts = append(parts, ep.String()+"="+md.String())
			}
		}
		c.OK, c.Detail = true, strings.Join(parts, " ")+" (effective: the host's and the settings' stricter)"
	case doc != nil && doc.ProxyAgentStatus.KeyLatchStatus.States.EffectiveModes != "":
		c.Detail = doc.ProxyAgentStatus.KeyLatchStatus.States.EffectiveModes + " per status.json; metrics socket: " + errText(mErr)
	default:
		c.Detail = "no effective modes: metrics socket: " + errText(mErr)
	}
	return c
}

func keyCheck(m *agentMetrics, mErr error, doc *status.Document) Check {
	c := Check{Name: "key", Fix: "the agent latches a key from WireServer: see the key latch message in status.json and journalctl -u msp-agent"}
	guid := ""
	if doc != nil {
		guid = doc.ProxyAgentStatus.KeyLatchStatus.States.KeyGUID
	}
	switch {
	case m != nil && m.keyAge >= 0:
		c.OK = true
		c.Detail = fmt.Sprintf("latched %s ago", (time.Duration(m.keyAge) * time.Second).Round(time.Second))
		if guid != "" {
			c.Detail += " (key " + guid + ")"
		}
	case m != nil && m.modes[hostproto.WireServer.String()] == hostproto.ModeDisabled && m.modes[hostproto.IMDS.String()] == hostproto.ModeDisabled:
		c.OK, c.Detail = true, "no key: the host has the secure channel disabled"
	case m != nil:
		c.Detail = "no key latched"
		if doc != nil {
			c.Detail += ": " + doc.ProxyAgentStatus.KeyLatchStatus.Message
		}
	default:
		c.Detail = "key age unknown: metrics socket: " + errText(mErr)
		c.Fix = "start the agent; as root, mspctl metrics must answer"
	}
	return c
}

// testTarget is the request doctor sends through the interception.
const testTarget = "/metadata/instance?api-version=2021-02-01"

func interceptionCheck(ctx context.Context, cfg *config.Config, m *agentMetrics) Check {
	url := "http://" + cfg.Endpoints.IMDS.String() + testTarget
	c := Check{Name: "interception", Fix: "the agent must run and attach to this process's cgroup (\"cgroup\" in " + cfgName(cfg) + "); see the eBPF message in status.json"}
	if m != nil {
		if md, ok := m.modes[hostproto.IMDS.String()]; ok && md == hostproto.ModeDisabled {
			c.OK, c.Detail = true, "not tested: IMDS is disabled, its requests go straight to the host"
			return c
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	req.Header.Set("Metadata", "true")
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}}
	resp, err := client.Do(req)
	if err != nil {
		c.Detail = "GET " + url + ": " + err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPERM) {
			c.Detail += " (the redirector fails closed for an enforced endpoint while no agent listens)"
			c.Fix = "start the agent: systemctl start msp-agent; journalctl -u msp-agent"
		}
		return c
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	marked := resp.Header.Get(hostproto.HeaderAuthorization) != ""
	reason := resp.Header.Get("x-ms-azure-proxy-reason")
	switch {
	case reason != "":
		c.OK = true
		c.Detail = fmt.Sprintf("GET %s: %d from the agent, reason %s (the interception works; the policy refused or the host failed)", url, resp.StatusCode, reason)
	case marked:
		c.OK = true
		c.Detail = fmt.Sprintf("GET %s: %d, relayed and signed by the agent", url, resp.StatusCode)
	default:
		c.Detail = fmt.Sprintf("GET %s: %d without the agent's marker: the request bypassed the agent", url, resp.StatusCode)
	}
	return c
}

func errText(err error) string {
	if err == nil {
		return "no figures"
	}
	return err.Error()
}

func cfgName(cfg *config.Config) string {
	if cfg.Path == "" {
		return config.DefaultPath + " (absent: defaults)"
	}
	return cfg.Path
}

// Print writes one line per check and returns whether all passed.
func Print(w io.Writer, checks []Check) bool {
	all := true
	for _, c := range checks {
		if c.OK {
			fmt.Fprintf(w, "ok    %-13s %s\n", c.Name, c.Detail)
			continue
		}
		all = false
		fmt.Fprintf(w, "FAIL  %-13s %s\n      %-13s fix: %s\n", c.Name, c.Detail, "", c.Fix)
	}
	return all
}

// Main is `mspctl doctor [--config FILE]`; it returns the exit code.
func Main(args []string, sys System, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mspctl doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "the agent's configuration `FILE`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mspctl doctor: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	path := *cfgPath
	if path == config.DefaultPath {
		path = ""
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "mspctl doctor: %v\n", err)
		return 1
	}
	if !Print(stdout, Run(context.Background(), cfg, sys)) {
		return 1
	}
	return 0
}
