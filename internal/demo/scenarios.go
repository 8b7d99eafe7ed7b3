package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim"
)

// Users of the clients.
const (
	rootUID   = 0
	nobodyUID = 65534
)

// client is one real client process: who it runs as and where.
type client struct {
	uid       int
	protected bool // in the cgroup the agent attaches to
}

func (c client) who(process string) string {
	user := "root"
	if c.uid == nobodyUID {
		user = "nobody"
	}
	if !c.protected {
		return process + " (" + user + ", outside the agent's cgroup)"
	}
	return process + " (" + user + ")"
}

// outcome is what a client saw.
type outcome struct {
	pid    int
	status int    // 0: no HTTP answer
	reason string // x-ms-azure-proxy-reason
	err    string
}

func (r *run) command(c client, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.protected {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(r.cgFD.Fd())
	}
	if c.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.uid)}
	}
	return cmd
}

// curl runs curl GET url with the Metadata header and extra headers.
func (r *run) curl(c client, url string, headers ...string) outcome {
	args := []string{"-s", "-S", "-m", "10", "-H", "Metadata: true", "-D", "-", "-o", "/dev/null"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := r.command(c, "curl", append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{}
	if cmd.Process != nil {
		o.pid = cmd.Process.Pid
	}
	if err != nil {
		o.err = strings.TrimSpace(stderr.String())
	}
	for i, line := range strings.Split(stdout.String(), "\r\n") {
		if f := strings.Fields(line); i == 0 && len(f) > 1 {
			o.status, _ = strconv.Atoi(f[1])
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "x-ms-azure-proxy-reason") {
			o.reason = strings.TrimSpace(v)
		}
	}
	return o
}

func (o outcome) http() string {
	if o.status == 0 {
		if o.err != "" {
			return "none"
		}
		return "-"
	}
	return strconv.Itoa(o.status)
}

// check is what a scenario expects.
type check struct {
	status   int    // HTTP status
	decision string // audit decision; "" means no audit line (not intercepted or refused first)
	reason   string // x-ms-azure-proxy-reason, when the agent answered
	host     string // "valid", "rejected" or "none"
}

func (r *run) judge(row *Row, o outcome, e *audit.Entry, rec *hostsim.Record, want check) {
	row.Agent, row.Host, row.HTTP = decision(e, o.reason), verdict(rec), o.http()
	var bad []string
	if o.status != want.status {
		bad = append(bad, fmt.Sprintf("HTTP %d (want %d) %s", o.status, want.status, o.err))
	}
	switch {
	case want.decision == "" && e != nil:
		bad = append(bad, "the agent logged "+e.Decision)
	case want.decision != "" && (e == nil || e.Decision != want.decision):
		bad = append(bad, "agent decision "+row.Agent+" (want "+want.decision+")")
	}
	if want.reason != "" && o.reason != want.reason {
		bad = append(bad, "reason "+o.reason+" (want "+want.reason+")")
	}
	switch want.host {
	case "valid":
		if rec == nil || !rec.Signed || !rec.Valid {
			bad = append(bad, "host did not verify a valid signature")
		}
	case "rejected":
		if rec == nil || rec.Valid || rec.Status < 400 {
			bad = append(bad, "host did not reject it")
		}
	case "none":
		if rec != nil {
			bad = append(bad, "the request reached the host")
		}
	}
	row.Pass = len(bad) == 0
	row.Why = strings.Join(bad, "; ")
}

// scenarios runs the clients, one row each.
func (r *run) scenarios(ctx context.Context) {
	a := r.opts.Addrs
	const (
		goalState = "/machine/?comp=goalstate"
		compute   = "/metadata/instance/compute?api-version=2021-02-01"
		network   = "/metadata/instance/network?api-version=2021-02-01"
	)
	root, nobody := client{uid: rootUID, protected: true}, client{uid: nobodyUID, protected: true}

	r.logf("running the clients")
	type curlCase struct {
		c        client
		addr     string
		target   string
		headers  []string
		want     check
		whatText string
	}
	curlRow := func(cc curlCase) {
		row := Row{Who: cc.c.who("curl"), What: cc.whatText}
		// The request id finds the host's record; the path stays clean for
		// `mspctl policy suggest` on the kept audit log.
		id := fmt.Sprintf("msp-demo-%d-%d", os.Getpid(), len(r.rows)+1)
		o := r.curl(cc.c, "http://"+cc.addr+cc.target, append(cc.headers, requestIDHeader+": "+id)...)
		var e *audit.Entry
		if cc.want.decision != "" || cc.c.protected {
			e = r.auditEntry(o.pid)
		}
		rec := r.hostRecord(ctx, func(rec hostsim.Record) bool { return headerValue(rec, requestIDHeader) == id })
		r.judge(&row, o, e, rec, cc.want)
		if forged := forgedHeader(cc.headers); forged != "" && rec != nil {
			for _, h := range rec.Headers {
				if strings.EqualFold(h.Name, forged) && strings.Contains(h.Value, "forged") {
					row.Pass, row.Why = false, "the forged header reached the host"
				}
			}
			if row.Pass {
				row.Agent += ", forged header stripped"
			}
		}
		r.rows = append(r.rows, row)
	}

	curlRow(curlCase{c: root, addr: a.WireServer, target: goalState, whatText: "WireServer GET /machine/?comp=goalstate",
		want: check{status: 200, decision: audit.DecisionAllow, host: "valid"}})
	curlRow(curlCase{c: nobody, addr: a.WireServer, target: goalState, whatText: "WireServer GET /machine/?comp=goalstate",
		want: check{status: 403, decision: audit.DecisionDeny, reason: "root-required", host: "none"}})
	curlRow(curlCase{c: nobody, addr: a.IMDS, target: compute, whatText: "IMDS GET /metadata/instance/compute (allowed)",
		want: check{status: 200, decision: audit.DecisionAllow, host: "valid"}})
	curlRow(curlCase{c: nobody, addr: a.IMDS, target: network, whatText: "IMDS GET /metadata/instance/network (not allowed)",
		want: check{status: 403, decision: audit.DecisionDeny, host: "none"}})
	r.tokenRow(ctx)
	curlRow(curlCase{c: root, addr: a.WireServer, target: goalState, headers: []string{"x-ms-azure-host-authorization: forged"},
		whatText: "WireServer with a forged x-ms-azure-host-authorization",
		want:     check{status: 200, decision: audit.DecisionAllow, host: "valid"}})

	// The host switches IMDS to audit; the agent follows within its poll.
	if _, err := r.ctl.SetState(ctx, hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: modePtr(hostproto.ModeAudit)}}); err != nil {
		r.rows = append(r.rows, Row{Who: "host", What: "IMDS → audit", Why: err.Error()})
	} else {
		r.logf("host: IMDS switched to audit through the control API")
		start := time.Now()
		for time.Since(start) < 10*time.Second && !r.agentApplied("imds", "audit") {
			time.Sleep(50 * time.Millisecond)
		}
		r.logf("agent: follows the host's IMDS audit mode after %s", time.Since(start).Round(10*time.Millisecond))
		curlRow(curlCase{c: nobody, addr: a.IMDS, target: network, whatText: "IMDS GET /metadata/instance/network, host in audit",
			want: check{status: 200, decision: audit.DecisionAuditDeny, host: "valid"}})
	}

	curlRow(curlCase{c: client{uid: rootUID}, addr: a.WireServer, target: goalState, whatText: "WireServer GET /machine/?comp=goalstate, interception off",
		want: check{status: 401, host: "rejected"}})
}

// requestIDHeader carries each curl's id to the host's record.
const requestIDHeader = "x-ms-client-request-id"

func headerValue(rec hostsim.Record, name string) string {
	for _, h := range rec.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// forgedHeader names the x-ms-azure-host-* header a client sent, if any.
func forgedHeader(headers []string) string {
	for _, h := range headers {
		name, _, _ := strings.Cut(h, ":")
		if strings.HasPrefix(strings.ToLower(name), "x-ms-azure-host-") {
			return name
		}
	}
	return ""
}

// agentApplied reports whether the agent's log (kept by its supervisor)
// says it applied an endpoint's policy in a mode: it logs that once the
// new policy is in force (status.json is written only every minute).
func (r *run) agentApplied(endpoint, mode string) bool {
	data, _ := os.ReadFile(filepath.Join(r.w.LogFolder(), "supervisor.log"))
	for _, line := range bytes.Split(data, []byte("\n")) {
		var l struct{ Msg, Endpoint, Mode string }
		if json.Unmarshal(line, &l) == nil && l.Msg == "authorization policy applied" && l.Endpoint == endpoint && l.Mode == mode {
			return true
		}
	}
	return false
}

// tokenRow runs this binary's token client (azidentity
// ManagedIdentityCredential) as root in the protected cgroup.
func (r *run) tokenRow(ctx context.Context) {
	c := client{uid: rootUID, protected: true}
	row := Row{Who: c.who("msp-demo token-client"), What: "IMDS token: azidentity ManagedIdentityCredential"}
	resource := fmt.Sprintf("api://msp-demo-%d", time.Now().UnixNano())
	cmd := r.command(c, filepath.Join(r.opts.BinDir, "msp-demo"), TokenClientVerb, "-imds", r.opts.Addrs.IMDS, "-resource", resource)
	out, err := cmd.CombinedOutput()
	o := outcome{pid: cmd.Process.Pid, status: 200}
	if err != nil {
		o.status, o.err = 0, strings.TrimSpace(string(out))
	}
	e := r.auditEntry(o.pid)
	rec := r.hostRecord(ctx, func(rec hostsim.Record) bool {
		return strings.HasPrefix(rec.RawTarget, "/metadata/identity/oauth2/token") && strings.Contains(rec.RawTarget, strings.TrimPrefix(resource, "api://"))
	})
	r.judge(&row, o, e, rec, check{status: 200, decision: audit.DecisionAllow, host: "valid"})
	if row.Pass {
		row.HTTP = "200 (token)"
	}
	r.rows = append(r.rows, row)
}
