package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/redirect"
	"github.com/mspguest/msp/bpf"
	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/guest"
)

const (
	listenerMark = 0x4d5352
	exemptMark   = 0x4d5353
	nobody       = 65534
)

// testIP is this test process's loopback address for the emulated
// endpoints (ebpf.md §9: per-process targets, so parallel packages do not
// collide).
var testIP = fmt.Sprintf("127.0.1.%d", os.Getpid()%100+100)

// env is one end-to-end setup: msp-hostsim on testIP, the redirector on a
// child cgroup, the proxy on 127.0.0.1:0, a latched key.
type env struct {
	t     *testing.T
	cg    string
	emu   *hostsim.Emulator
	red   *redirect.Redirector
	px    *Proxy
	audit *auditLog
	addrs map[hostproto.Endpoint]netip.AddrPort
	bin   string // the test binary, executable by uid 65534
}

type envOptions struct {
	hostModes hostproto.Mode // the emulator's mode of every endpoint (default enforce)
	limits    Limits
	noKey     bool
	// override replaces an endpoint's upstream address (the emulator's
	// otherwise): a dead port, an in-test server.
	override map[hostproto.Endpoint]string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	cg := bpftest.NewCgroup(t)
	mode := o.hostModes
	if mode == hostproto.ModeDisabled {
		mode = hostproto.ModeEnforce
	}
	st := hostsim.DefaultState()
	st.Modes = hostproto.Modes{IMDS: mode, WireServer: mode, HostGAPlugin: mode}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	emu, err := hostsim.Start(hostsim.Config{IMDSAddr: testIP + ":0", WireServerAddr: testIP + ":0", HostGAAddr: testIP + ":0", Initial: &st, Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ea := emu.Addrs()
	addrs := map[hostproto.Endpoint]netip.AddrPort{
		hostproto.IMDS:         netip.MustParseAddrPort(ea.IMDS),
		hostproto.WireServer:   netip.MustParseAddrPort(ea.WireServer),
		hostproto.HostGAPlugin: netip.MustParseAddrPort(ea.HostGA),
	}
	for ep, a := range o.override {
		addrs[ep] = netip.MustParseAddrPort(a)
	}
	endpoints := make(map[netip.AddrPort]hostproto.Endpoint)
	for ep, a := range addrs {
		endpoints[a] = ep
	}

	e := &env{t: t, cg: cg, emu: emu, addrs: addrs, audit: &auditLog{}}
	px, err := New(Config{
		Addr: "127.0.0.1:0", ListenerMark: listenerMark, ExemptMark: exemptMark,
		Records: lateRecords{e}, Endpoints: endpoints, Identify: namedCaller,
		Audit: e.audit, Limits: o.limits, Log: lg,
		Provision: func(*rawhttp.Request, *identity.Caller) Response {
			return Response{Status: 200, ContentType: "application/json; charset=utf-8", Body: []byte(`{"finished": true, "errorMessage": ""}`)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := px.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	e.px = px

	red, err := redirect.Start(redirect.Config{Cgroup: cg, Proxy: ln.Addr().(*net.TCPAddr).AddrPort(), Addresses: addrs, ListenerMark: listenerMark, ExemptMark: exemptMark})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { red.Close() })
	if err := red.SetModes(hostproto.Modes{IMDS: hostproto.ModeEnforce, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}); err != nil {
		t.Fatal(err)
	}
	e.red = red
	go px.Serve(ln) // after e.red is set: lateRecords reads it

	px.SetHostModes(st.Modes)
	px.SetPolicy(hostproto.IMDS, testIMDSPolicy(t, hostproto.ModeEnforce))
	px.SetPolicy(hostproto.WireServer, authz.Unrestricted(hostproto.ModeEnforce))
	px.SetPolicy(hostproto.HostGAPlugin, authz.Unrestricted(hostproto.ModeEnforce))
	if !o.noKey {
		g := &guest.Guest{IsRoot: true}
		if _, err := g.Latch(ea.WireServer); err != nil {
			t.Fatalf("latch a key from the emulator: %v", err)
		}
		px.SetSigner(g.Signer)
	}
	e.bin = clientBinary(t)
	return e
}

// lateRecords lets the proxy start before the redirector it takes
// records from.
type lateRecords struct{ e *env }

func (l lateRecords) Take(peer netip.AddrPort) (bpf.Record, bool, error) {
	if l.e.red == nil {
		return bpf.Record{}, false, nil
	}
	return l.e.red.Take(peer)
}

// namedCaller is RecordCaller plus the user name, so that userName
// selectors can match in tests (the identity resolver does this and more).
func namedCaller(rec bpf.Record) identity.Caller {
	c := RecordCaller(rec)
	if u, err := user.LookupId(fmt.Sprint(rec.UID)); err == nil {
		c.UserName = u.Username
	}
	return c
}

// testIMDSPolicy: deny by default; /metadata/instance for root and nobody,
// /metadata/identity for root only.
func testIMDSPolicy(t *testing.T, mode hostproto.Mode) *authz.Snapshot {
	t.Helper()
	root, nob := "root", "nobody"
	it := hostproto.AuthorizationItem{DefaultAccess: "deny", Mode: mode.String(), ID: "proxy-test", Rules: &hostproto.Rules{
		Privileges: []hostproto.Privilege{{Name: "instance", Path: "/metadata/instance"}, {Name: "identity", Path: "/metadata/identity"}},
		Roles:      []hostproto.Role{{Name: "reader", Privileges: []string{"instance"}}, {Name: "tokens", Privileges: []string{"identity"}}},
		Identities: []hostproto.Identity{{Name: "root", UserName: &root}, {Name: "nobody", UserName: &nob}},
		RoleAssignments: []hostproto.RoleAssignment{
			{Role: "reader", Identities: []string{"root", "nobody"}},
			{Role: "tokens", Identities: []string{"root"}},
		},
	}}
	s := authz.Compile(it)
	if w := s.Warnings(); len(w) > 0 {
		t.Fatalf("test policy: %v", w)
	}
	return s
}

// clientBinary copies the test binary where uid 65534 can run it.
func clientBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "msp-proxy-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// run starts name with args inside the test cgroup as uid (0 or 65534)
// and returns its standard output.
func (e *env) run(uid int, environ []string, name string, args ...string) (string, error) {
	e.t.Helper()
	f, err := os.Open(e.cg)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environ
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return string(out), nil
}

// client runs the test binary in a client mode against an endpoint.
func (e *env) client(uid int, mode string, ep hostproto.Endpoint, req string) string {
	e.t.Helper()
	out, err := e.run(uid, []string{clientEnv + "=" + mode, dstEnv + "=" + e.addrs[ep].String(), reqEnv + "=" + req}, e.bin)
	if err != nil {
		e.t.Fatalf("client %s to %s: %v\noutput: %s", mode, ep, err, out)
	}
	return out
}

// raw sends raw request bytes from a client in the cgroup and returns the
// responses, parsed.
func (e *env) raw(uid int, ep hostproto.Endpoint, req string) []resp {
	e.t.Helper()
	return parseResponses(e.t, e.client(uid, "raw", ep, req))
}

// rawEach sends each request on a connection of its own, from one client
// process, and returns each connection's responses.
func (e *env) rawEach(uid int, ep hostproto.Endpoint, reqs []string) [][]resp {
	e.t.Helper()
	outs := strings.Split(e.client(uid, "raw", ep, strings.Join(reqs, "\x1e")), "\x1e")
	if len(outs) != len(reqs) {
		e.t.Fatalf("%d outputs for %d connections", len(outs), len(reqs))
	}
	rs := make([][]resp, len(outs))
	for i, o := range outs {
		rs[i] = parseResponses(e.t, o)
	}
	return rs
}

// resp is one response as the client saw it.
type resp struct {
	status  int
	headers map[string][]string // lower-case names
	body    string
}

func (r resp) get(name string) string {
	if v := r.headers[strings.ToLower(name)]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// parseResponses reads consecutive HTTP/1.1 responses: no body for
// 1xx/204/304 or where the next response follows at once (HEAD), else
// chunked, Content-Length or close-delimited.
func parseResponses(t *testing.T, raw string) []resp {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	var out []resp
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return out
		}
		var r resp
		if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &r.status); err != nil {
			t.Fatalf("status line %q: %v\nall: %q", line, err, raw)
		}
		r.headers = map[string][]string{}
		for {
			h, _ := br.ReadString('\n')
			h = strings.TrimRight(h, "\r\n")
			if h == "" {
				break
			}
			n, v, _ := strings.Cut(h, ":")
			r.headers[strings.ToLower(n)] = append(r.headers[strings.ToLower(n)], strings.TrimSpace(v))
		}
		next, _ := br.Peek(min(9, br.Buffered()))
		switch {
		case r.status == 204 || r.status == 304 || r.status < 200:
		case string(next) == "HTTP/1.1 ": // the answer to HEAD
		case r.get("transfer-encoding") == "chunked":
			var body bytes.Buffer
			for {
				var n int
				l, _ := br.ReadString('\n')
				fmt.Sscanf(strings.TrimSpace(l), "%x", &n)
				if n == 0 {
					for t, _ := br.ReadString('\n'); t != "\r\n" && t != ""; t, _ = br.ReadString('\n') {
					}
					break
				}
				io.CopyN(&body, br, int64(n))
				br.ReadString('\n')
			}
			r.body = body.String()
		case r.get("content-length") != "":
			var n int64
			fmt.Sscan(r.get("content-length"), &n)
			b := make([]byte, n)
			io.ReadFull(br, b)
			r.body = string(b)
		default: // close-delimited
			b, _ := io.ReadAll(br)
			r.body = string(b)
		}
		out = append(out, r)
	}
}

// records returns what the emulator saw since seq.
func (e *env) records(since uint64) []hostsim.Record { return e.emu.Verifications(since) }

func (e *env) lastSeq() uint64 {
	rs := e.emu.Verifications(0)
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Seq
}

// auditLog is the test's Auditor.
type auditLog struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *auditLog) Record(e audit.Entry) {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
}

func (a *auditLog) all() []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Entry(nil), a.entries...)
}

// waitAudit waits until n entries were recorded (the proxy records after
// answering).
func (a *auditLog) waitAudit(t *testing.T, n int) []audit.Entry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		es := a.all()
		if len(es) >= n || time.Now().After(deadline) {
			return es
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get is a minimal request with the Host header of the endpoint.
func get(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n" + strings.Join(extra, "") + "\r\n"
}
