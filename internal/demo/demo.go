package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/bpf/cgroup2"
	"github.com/mspguest/msp/handler/fakewaagent"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/control"
)

// Addrs are the emulated endpoints (loopback host:port) and the
// emulator's control API.
type Addrs struct {
	IMDS, WireServer, HostGA, Control string
}

// DefaultAddrs are msp-hostsim's defaults: the loopback aliases of
// README's tools section.
var DefaultAddrs = Addrs{
	IMDS: hostsim.DefaultIMDSAddr, WireServer: hostsim.DefaultWireServerAddr,
	HostGA: hostsim.DefaultHostGAAddr, Control: hostsim.DefaultControlAddr,
}

// Options configure Run.
type Options struct {
	// BinDir holds msp-hostsim, msp-handler, msp-agent and msp-demo.
	BinDir string
	// Manifest is the committed HandlerManifest.json.
	Manifest string
	// AuditOut, when set, receives a copy of the agent's audit log.
	AuditOut string
	// Addrs default to DefaultAddrs.
	Addrs Addrs
	// Out receives the progress lines and the table.
	Out io.Writer
	// Keep leaves the work directory for inspection.
	Keep bool
}

// Result is what the demo showed.
type Result struct {
	Rows           []Row
	Passed, Failed int
	Elapsed        time.Duration
}

// Row is one scenario.
type Row struct {
	Who, What, Agent, Host string
	HTTP                   string
	Pass                   bool
	Why                    string // what was expected, when it failed
}

// extName is the extension's <Publisher>.<Type>.
const extName = "Microsoft.CPlat.ProxyAgent.MspLinux"

type run struct {
	opts    Options
	out     io.Writer
	work    string
	root    string // MSP_ROOT
	cg      string
	cgFD    *os.File
	aliases []string
	hostsim *exec.Cmd
	exited  chan struct{} // closed when msp-hostsim exits
	ctl     *control.Client
	w       *fakewaagent.Waagent
	version string
	rows    []Row
}

// Run runs the demo. It returns an error when it could not set up or
// tear down; failed scenarios are counted in the Result.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	start := time.Now()
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Addrs == (Addrs{}) {
		opts.Addrs = DefaultAddrs
	}
	if os.Geteuid() != 0 {
		return res, errors.New("the demo must run as root: it loads eBPF programs and creates a cgroup (sudo make demo)")
	}
	r := &run{opts: opts, out: opts.Out}
	defer func() {
		if terr := r.teardown(); terr != nil && err == nil {
			err = terr
		}
		res.Rows = r.rows
		for _, row := range r.rows {
			if row.Pass {
				res.Passed++
			} else {
				res.Failed++
			}
		}
		res.Elapsed = time.Since(start)
	}()
	if err := r.setUp(ctx); err != nil {
		return res, err
	}
	r.scenarios(ctx)
	if err := r.keepAudit(); err != nil {
		return res, err
	}
	r.uninstall()
	return res, nil
}

// keepAudit copies the agent's audit log to AuditOut, for README's
// walk through `mspctl policy suggest` and `impact`.
func (r *run) keepAudit() error {
	if r.opts.AuditOut == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(r.root, "var/log/msp-agent", audit.FileName))
	if err != nil {
		return fmt.Errorf("keep the audit log: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(r.opts.AuditOut), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(r.opts.AuditOut, data, 0o644); err != nil {
		return fmt.Errorf("keep the audit log: %w", err)
	}
	r.logf("audit log kept in %s", r.opts.AuditOut)
	return nil
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "demo: "+format+"\n", args...)
}

func (r *run) setUp(ctx context.Context) error {
	var err error
	if r.work, err = os.MkdirTemp("", "msp-demo-"); err != nil {
		return err
	}
	if err := os.Chmod(r.work, 0o755); err != nil {
		return err
	}
	r.root = filepath.Join(r.work, "msproot")
	if err := r.addAliases(); err != nil {
		return err
	}
	if err := r.startHostsim(ctx); err != nil {
		return err
	}
	if err := r.makeCgroup(); err != nil {
		return err
	}
	return r.install()
}

// addAliases puts the emulated endpoints' addresses on lo when the
// kernel does not already answer them (127/8 is local on Linux, so it
// usually does), remembering what it added.
func (r *run) addAliases() error {
	seen := map[string]bool{}
	for _, addr := range []string{r.opts.Addrs.IMDS, r.opts.Addrs.WireServer, r.opts.Addrs.HostGA, r.opts.Addrs.Control} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("address %q: %w", addr, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("address %q: the demo uses loopback addresses only", addr)
		}
		if seen[host] {
			continue
		}
		seen[host] = true
		if ln, err := net.Listen("tcp", net.JoinHostPort(host, "0")); err == nil {
			ln.Close()
			continue
		}
		if out, err := exec.Command("ip", "addr", "add", host+"/32", "dev", "lo").CombinedOutput(); err != nil {
			return fmt.Errorf("ip addr add %s/32 dev lo: %v: %s", host, err, out)
		}
		r.aliases = append(r.aliases, host)
		r.logf("added loopback alias %s", host)
	}
	// The emulator this demo starts must be the one that answers.
	for _, addr := range []string{r.opts.Addrs.IMDS, r.opts.Addrs.WireServer, r.opts.Addrs.HostGA, r.opts.Addrs.Control} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is in use (another msp-hostsim or demo running?): %w", addr, err)
		}
		ln.Close()
	}
	return nil
}

func (r *run) startHostsim(ctx context.Context) error {
	a := r.opts.Addrs
	r.hostsim = exec.Command(filepath.Join(r.opts.BinDir, "msp-hostsim"),
		"--imds-addr", a.IMDS, "--wireserver-addr", a.WireServer, "--hostga-addr", a.HostGA,
		"--control-addr", a.Control, "--verify-log", filepath.Join(r.work, "verify.jsonl"), "--log-level", "warn")
	logFile, err := os.Create(filepath.Join(r.work, "hostsim.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	r.hostsim.Stdout, r.hostsim.Stderr = logFile, logFile
	if err := r.hostsim.Start(); err != nil {
		return fmt.Errorf("start msp-hostsim: %w", err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.hostsim.Wait(); close(r.exited) }()
	r.ctl = control.New(a.Control, &http.Client{Timeout: 5 * time.Second})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			log, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("msp-hostsim exited: %s (are the addresses in use? see README's tools section)", strings.TrimSpace(string(log)))
		default:
		}
		if _, err := r.ctl.State(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("msp-hostsim did not answer on %s: %v\n%s", a.Control, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.logf("msp-hostsim: IMDS %s, WireServer %s, HostGAPlugin %s (all enforce), control %s", a.IMDS, a.WireServer, a.HostGA, a.Control)
	return nil
}

// makeCgroup creates the child cgroup the agent attaches to and the
// clients run in: the demo never attaches at the root cgroup.
func (r *run) makeCgroup() error {
	root, err := cgroup2.Root()
	if err != nil {
		return err
	}
	r.cg = filepath.Join(root, fmt.Sprintf("msp-demo-%d", os.Getpid()))
	if err := os.Mkdir(r.cg, 0o755); err != nil {
		return fmt.Errorf("create the demo cgroup: %w", err)
	}
	r.cgFD, err = os.Open(r.cg)
	return err
}

// Settings is the sample settings document: an IMDS allowlist without a
// mode (the host's applies) and a WireServer rule for the guest agent.
func Settings() map[string]any {
	identities := []any{
		map[string]any{"name": "root", "userName": "root"},
		map[string]any{"name": "nobody", "userName": "nobody"},
	}
	return map[string]any{
		"imds": map[string]any{
			"id":            "demo-imds-allowlist",
			"defaultAccess": "deny",
			"rules": map[string]any{
				"privileges": []any{
					map[string]any{"name": "managedIdentity", "path": "/metadata/identity"},
					map[string]any{"name": "compute", "path": "/metadata/instance/compute"},
				},
				"roles":           []any{map[string]any{"name": "reader", "privileges": []string{"managedIdentity", "compute"}}},
				"identities":      identities,
				"roleAssignments": []any{map[string]any{"role": "reader", "identities": []string{"root", "nobody"}}},
			},
		},
		"wireServer": map[string]any{
			"id":            "demo-wireserver-guest-agent",
			"defaultAccess": "deny",
			"rules": map[string]any{
				"privileges":      []any{map[string]any{"name": "everything", "path": "/"}},
				"roles":           []any{map[string]any{"name": "guestAgent", "privileges": []string{"everything"}}},
				"identities":      identities[:1],
				"roleAssignments": []any{map[string]any{"role": "guestAgent", "identities": []string{"root"}}},
			},
		},
		"logLevel": "info",
	}
}

// install deploys the handler package and runs waagent's install and
// enable with the sample settings.
func (r *run) install() error {
	pkg := filepath.Join(r.work, "package")
	if err := os.MkdirAll(filepath.Join(pkg, "bin"), 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{
		r.opts.Manifest: "HandlerManifest.json",
		filepath.Join(r.opts.BinDir, "msp-handler"): "bin/msp-handler",
		filepath.Join(r.opts.BinDir, "msp-agent"):   "bin/msp-agent",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(pkg, dst), data, 0o755); err != nil {
			return err
		}
	}
	version, err := manifestVersion(r.opts.Manifest)
	if err != nil {
		return err
	}
	r.version = version
	r.w, err = fakewaagent.New(filepath.Join(r.work, "var/lib/waagent"), filepath.Join(r.work, "var/log/azure"), extName)
	if err != nil {
		return err
	}
	listen, err := freePort()
	if err != nil {
		return err
	}
	a := r.opts.Addrs
	r.w.Env = []string{"PATH=" + os.Getenv("PATH"), "MSP_ROOT=" + r.root, "MSP_LISTEN=" + listen, "MSP_CGROUP=" + r.cg,
		"MSP_POLL_SECONDS=1",
		fmt.Sprintf(`MSP_ENDPOINTS={"imds":%q,"wireServer":%q,"hostGAPlugin":%q}`, a.IMDS, a.WireServer, a.HostGA)}
	r.logf("installing msp-agent through msp-handler %s (waagent's install, enable; test mode under %s)", version, r.root)
	s, err := r.w.FirstInstall(fakewaagent.Package{Version: version, Dir: pkg}, 0, Settings(), nil)
	if err != nil {
		return err
	}
	if res, failed := s.Failed(); failed {
		return fmt.Errorf("waagent %s failed: %s", res.Verb, res)
	}
	st, err := r.w.ReadStatus(version, 0)
	if err != nil {
		return err
	}
	if st.Status != "success" {
		return fmt.Errorf("extension status %s: %s", st.Status, st.Message)
	}
	r.logf("extension status: %s (%s)", st.Status, st.Message)
	return nil
}

// manifestVersion is extension.json's version as the package carries it:
// the fake waagent names the handler directory after it.
func manifestVersion(manifest string) (string, error) {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(manifest)), "extension.json"))
	if err != nil {
		return "", fmt.Errorf("read extension.json beside %s: %w", filepath.Dir(manifest), err)
	}
	var ext struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &ext); err != nil || ext.Version == "" {
		return "", fmt.Errorf("extension.json: no version (%v)", err)
	}
	return ext.Version, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// uninstall removes the extension as waagent does (disable, uninstall)
// and checks that nothing is left running, attached or pinned.
func (r *run) uninstall() {
	if r.w == nil {
		return
	}
	r.logf("removing the extension (waagent's disable, uninstall)")
	row := Row{Who: "waagent", What: "disable + uninstall", Agent: "-", Host: "-"}
	s, err := r.w.Remove(r.version, 0)
	res, failed := s.Failed()
	switch {
	case err != nil:
		row.Why = err.Error()
	case failed:
		row.Why = res.String()
	}
	var left []string
	if pids := r.leftProcesses(); len(pids) > 0 {
		left = append(left, "processes "+strings.Join(pids, ","))
	}
	if ids, err := bpf.Attached(r.cg); err != nil || len(ids) > 0 {
		left = append(left, fmt.Sprintf("%d programs attached (%v)", len(ids), err))
	}
	if pins, _ := os.ReadDir(filepath.Join(r.root, "sys/fs/bpf/msp-agent")); len(pins) > 0 {
		left = append(left, fmt.Sprintf("%d pins", len(pins)))
	}
	for _, p := range []string{"usr/sbin/msp-agent", "etc/msp-agent/config.json", "var/lib/msp-agent"} {
		if _, err := os.Stat(filepath.Join(r.root, p)); err == nil {
			left = append(left, p)
		}
	}
	if row.Why == "" && len(left) > 0 {
		row.Why = "left: " + strings.Join(left, "; ")
	}
	row.Pass = row.Why == ""
	row.HTTP = "exit 0"
	if row.Pass {
		row.Agent, row.Host = "removed", "nothing running, attached or pinned"
	}
	r.rows = append(r.rows, row)
	r.w = nil
}

// leftProcesses lists processes still running the installed agent or
// the handler's supervisor and monitor of this demo.
func (r *run) leftProcesses() []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), r.root) || strings.Contains(string(cmdline), r.work+"/var/lib/waagent") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// teardown undoes whatever setUp did, in reverse, even after a failure.
func (r *run) teardown() error {
	var errs []error
	if r.w != nil { // the scenarios did not get to the uninstall
		_, _ = r.w.Remove(r.version, 0)
	}
	for _, pid := range r.leftProcesses() {
		n, _ := strconv.Atoi(pid)
		_ = syscall.Kill(n, syscall.SIGKILL)
	}
	if bin := filepath.Join(r.root, "usr/sbin/msp-agent"); r.root != "" {
		if _, err := os.Stat(bin); err == nil {
			_ = exec.Command(bin, "--config", filepath.Join(r.root, "etc/msp-agent/config.json"), "--cleanup").Run()
		}
	}
	if r.root != "" {
		_ = syscall.Unmount(filepath.Join(r.root, "sys/fs/bpf"), syscall.MNT_DETACH)
	}
	if r.exited != nil {
		_ = r.hostsim.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			_ = r.hostsim.Process.Kill()
			<-r.exited
		}
	}
	if r.cgFD != nil {
		r.cgFD.Close()
	}
	if r.cg != "" {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(r.cg)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove the demo cgroup %s: %w", r.cg, err))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, ip := range r.aliases {
		if out, err := exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip addr del %s/32 dev lo: %v: %s", ip, err, out))
		}
	}
	if r.work != "" && !r.opts.Keep {
		if err := os.RemoveAll(r.work); err != nil {
			errs = append(errs, err)
		}
	} else if r.work != "" {
		r.logf("work directory kept: %s", r.work)
	}
	return errors.Join(errs...)
}

// auditEntry waits briefly for the agent's audit line of a caller pid.
func (r *run) auditEntry(pid int) *audit.Entry {
	path := filepath.Join(r.root, "var/log/msp-agent", audit.FileName)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if e := findAudit(path, pid); e != nil {
			return e
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findAudit(path string, pid int) *audit.Entry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var found *audit.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e audit.Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && int(e.Caller.PID) == pid {
			found = &e
		}
	}
	return found
}

// hostRecord is the emulator's latest record that matches, nil when the
// host never saw such a request.
func (r *run) hostRecord(ctx context.Context, match func(hostsim.Record) bool) *hostsim.Record {
	recs, err := r.ctl.Verifications(ctx, 0)
	if err != nil {
		return nil
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if match(recs[i]) {
			return &recs[i]
		}
	}
	return nil
}

// verdict renders a host record.
func verdict(rec *hostsim.Record) string {
	switch {
	case rec == nil:
		return "not reached"
	case rec.Signed && rec.Valid:
		return "signature valid (" + rec.Mode + ")"
	case !rec.Signed && rec.Status >= 400:
		return fmt.Sprintf("unsigned: rejected %d (%s)", rec.Status, rec.Mode)
	case !rec.Signed:
		return "unsigned: served (" + rec.Mode + ")"
	}
	return fmt.Sprintf("rejected: %s (%s)", rec.Reason, rec.Mode)
}

func decision(e *audit.Entry, reason string) string {
	if e == nil {
		if reason != "" {
			return "refused: " + reason
		}
		return "not intercepted"
	}
	d := e.Decision
	if e.Reason != "" {
		d += ": " + e.Reason
	}
	if e.Signed {
		d += ", signed"
	}
	return d
}

func modePtr(m hostproto.Mode) *hostproto.Mode { return &m }
