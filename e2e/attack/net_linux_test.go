package attack

import (
	"bufio"
	"encoding/hex"
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

	"github.com/mspguest/msp/agent/daemon"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/bpf/bpftest"
)

// testListenerLoopbackOnly: the agent's only listening socket on its port
// is bound to a 127.x address, and the machine's own non-loopback
// addresses refuse a connection to that port.
func testListenerLoopbackOnly(t *testing.T, s *suite) {
	port := s.h.Listen.Port()
	bound := listeningOn(t, "/proc/net/tcp", port)
	bound6 := listeningOn(t, "/proc/net/tcp6", port)
	if len(bound) != 1 || !bound[0].Is4() || !bound[0].IsLoopback() || len(bound6) != 0 {
		t.Fatalf("listening sockets on port %d: %v (tcp6: %v); want one, on 127.x", port, bound, bound6)
	}
	t.Logf("listener bound to %s:%d", bound[0], port)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP)
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() && ip.Is6() {
			continue // would need a zone
		}
		// A local connect to the machine's own address never leaves it.
		dst := netip.AddrPortFrom(ip, port)
		c, err := net.DialTimeout("tcp", dst.String(), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("connected to the listener port at %s; want it unreachable off loopback", dst)
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect %s: %v; want connection refused", dst, err)
		}
		t.Logf("connect %s: %v", dst, err)
		tried++
	}
	if tried == 0 {
		t.Logf("no non-loopback address on this machine: the bound address is the evidence")
	}
}

// listeningOn returns the local addresses of the TCP sockets in LISTEN
// state on port, read from a /proc/net/tcp{,6} table.
func listeningOn(t *testing.T, table string, port uint16) []netip.Addr {
	t.Helper()
	f, err := os.Open(table)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[3] != "0A" {
			continue
		}
		ipHex, portHex, _ := strings.Cut(fs[1], ":")
		var p uint16
		fmt.Sscanf(portHex, "%X", &p)
		if p != port {
			continue
		}
		b, err := hex.DecodeString(ipHex)
		if err != nil {
			t.Fatalf("%s: %q: %v", table, fs[1], err)
		}
		// The kernel prints each 32-bit word in host (little-endian) order.
		for i := 0; i+4 <= len(b); i += 4 {
			b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, a)
	}
	return out
}

// testOtherDestinations: absolute-form, CONNECT, asterisk-form and
// Host-header tricks; the connection is routed by its original
// destination only, and nothing reaches any other address.
func testOtherDestinations(t *testing.T, s *suite) {
	can, wire := s.canary.addr, s.wire.String()
	withHost := func(target, host string, extra ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nMetadata: true\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n"
	}
	tests := []struct {
		name   string
		dst    netip.AddrPort
		uid    int
		req    string
		status int
		reason string
		at     string // the endpoint that must record the case's marker ("" none)
	}{
		{"Host evil.example", s.imds, nobody, withHost(marker("host evil"), "evil.example"), 200, "", "imds"},
		{"Host canary", s.imds, nobody, withHost(marker("host canary"), can), 200, "", "imds"},
		{"Host WireServer on IMDS", s.imds, 0, withHost(marker("host wire"), wire), 200, "", "imds"},
		{"two Host headers", s.imds, nobody, withHost(marker("two hosts"), "h", "Host: "+can+"\r\n"), 0, "", ""},
		{"X-Forwarded-Host and Forwarded", s.imds, nobody, withHost(marker("forwarded"), "h", "X-Forwarded-Host: "+can+"\r\nForwarded: host="+can+"\r\nX-Original-URL: http://"+can+"/\r\n"), 200, "", "imds"},
		{"absolute-form canary", s.imds, nobody, withHost("http://"+can+marker("absolute canary"), can), 400, "bad-request-line", ""},
		{"absolute-form WireServer", s.imds, 0, withHost("http://"+wire+marker("absolute wire"), wire), 400, "bad-request-line", ""},
		{"absolute-form same address", s.imds, nobody, withHost("http://"+s.imds.String()+marker("absolute same"), "h"), 400, "bad-request-line", ""},
		{"CONNECT canary", s.imds, nobody, "CONNECT " + can + " HTTP/1.1\r\nHost: " + can + "\r\n\r\n", 400, "bad-request-line", ""},
		{"CONNECT WireServer", s.imds, 0, "CONNECT " + wire + " HTTP/1.1\r\nHost: " + wire + "\r\n\r\n", 400, "bad-request-line", ""},
		{"asterisk-form OPTIONS", s.imds, nobody, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 0, "", ""},
		// Straight to the listener, not through the redirect: the agent
		// has no original destination for the connection.
		{"direct to the listener", s.h.Listen, nobody, get(marker("direct"), "Connection: close\r\n"), 421, "misdirected", ""},
		{"direct to the listener, Host IMDS", s.h.Listen, 0, withHost(marker("direct host"), s.imds.String()), 421, "misdirected", ""},
		{"Host IMDS on WireServer", s.wire, 0, "GET /machine/?comp=goalstate&case=host-imds HTTP/1.1\r\nHost: " + s.imds.String() + "\r\nConnection: close\r\n\r\n", 200, "", "wireserver"},
	}
	before := s.seq()
	outs := map[int][]outcome{}
	for _, uid := range []int{0, nobody} {
		var exs []exchange
		for _, tt := range tests {
			if tt.uid == uid {
				exs = append(exs, ex(tt.dst, tt.req))
			}
		}
		outs[uid] = s.raw(t, placement{uid: uid}, exs...)
	}
	recs := s.since(before)
	next := map[int]int{}
	for _, tt := range tests {
		o := outs[tt.uid][next[tt.uid]]
		next[tt.uid]++
		t.Run(tt.name, func(t *testing.T) {
			rs, rest := parseResponses(o.Data)
			if len(rs) != 1 {
				t.Fatalf("%d responses %+v (rest %q, outcome %+v); want one", len(rs), rs, rest, o)
			}
			if tt.status == 0 {
				// Whatever the answer, it is the agent's own refusal or the
				// original destination's.
				if rs[0].Status == 200 {
					t.Errorf("answered 200; want a refusal")
				}
			} else if rs[0].Status != tt.status || rs[0].reason() != tt.reason {
				t.Errorf("got %d %q; want %d %q", rs[0].Status, rs[0].reason(), tt.status, tt.reason)
			}
			t.Logf("%d %s", rs[0].Status, rs[0].reason())
			// The case reached the host once, at the original destination,
			// signed, or not at all.
			n := 0
			for _, r := range recs {
				if !strings.Contains(tt.req, r.RawTarget) || r.RawTarget == "" {
					continue
				}
				n++
				if r.Endpoint != tt.at || !r.Signed || !r.Valid {
					t.Errorf("the host recorded %s %s at %s (signed %v valid %v); want only at %q, signed", r.Method, r.RawTarget, r.Endpoint, r.Signed, r.Valid, tt.at)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.at != ""]; n != want {
				t.Errorf("the host recorded the case %d times; want %d", n, want)
			}
		})
	}
	for _, r := range recs {
		if r.Class == "unreadable" {
			t.Errorf("the host read an unreadable request: %+v", r)
		}
	}
	if n := s.canary.count(); n != 0 {
		t.Errorf("the canary at %s accepted %d connections", s.canary.addr, n)
	}
}

// testDestinationSpellings: every spelling of the IMDS address that a
// client resolves to the same socket address is redirected: signed at the
// host, never unsigned.
func testDestinationSpellings(t *testing.T, s *suite) {
	a4 := s.imds.Addr().As4()
	port := s.imds.Port()
	u32 := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
	hosts := []struct{ name, host string }{
		{"v4-mapped IPv6", fmt.Sprintf("[::ffff:%s]", s.imds.Addr())},
		{"v4-mapped IPv6 hex", fmt.Sprintf("[::ffff:%x:%x]", uint16(u32>>16), uint16(u32))},
		{"decimal integer", fmt.Sprint(u32)},
		{"hex integer", fmt.Sprintf("0x%08x", u32)},
		{"octal dotted", fmt.Sprintf("0%o.0%o.0%o.0%o", a4[0], a4[1], a4[2], a4[3])},
		{"hex dotted", fmt.Sprintf("0x%x.0x%x.0x%x.0x%x", a4[0], a4[1], a4[2], a4[3])},
		{"three parts", fmt.Sprintf("%d.%d.%d", a4[0], a4[1], int(a4[2])<<8|int(a4[3]))},
		{"two parts", fmt.Sprintf("%d.%d", a4[0], int(a4[1])<<16|int(a4[2])<<8|int(a4[3]))},
		{"leading zeros", fmt.Sprintf("%03d.%03d.%03d.%03d", a4[0], a4[1], a4[2], a4[3])},
	}
	for _, tt := range hosts {
		t.Run(tt.name, func(t *testing.T) {
			target := marker("spelling " + tt.name)
			url := fmt.Sprintf("http://%s:%d%s", tt.host, port, target)
			before := s.seq()
			r := s.h.Curl(nobody, "GET", url)
			recs := s.since(before)
			t.Logf("%s: %d %s; the host recorded %d", url, r.Status, r.Reason, len(recs))
			if r.Status == -1 && len(recs) == 0 {
				// A client that refuses the spelling sends nothing.
				t.Logf("curl refuses %s: %s", url, r.Body)
				return
			}
			if r.Status != 200 || len(recs) != 1 {
				t.Fatalf("curl %s: %+v; host records %+v; want 200 and one record", url, r, recs)
			}
			if rec := recs[0]; rec.RawTarget != target || !rec.Signed || !rec.Valid || rec.IsRoot == nil || *rec.IsRoot {
				t.Errorf("host record %+v; want %s signed, valid, isRoot false", rec, target)
			}
		})
	}
}

// testOtherCgroup: a process outside the agent's cgroup is not intercepted:
// its request reaches the host unsigned and, in enforce mode, is
// rejected; one in a new cgroup below the agent's is still intercepted.
func testOtherCgroup(t *testing.T, s *suite) {
	t.Run("sibling cgroup", func(t *testing.T) {
		dir := bpftest.NewCgroup(t)
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, c := range []struct {
			uid int
			dst netip.AddrPort
			req string
		}{
			{nobody, s.imds, get(marker("sibling nobody"), "Connection: close\r\n")},
			{0, s.imds, get(marker("sibling root"), "Connection: close\r\n")},
			{0, s.wire, get("/machine/?comp=goalstate&case=sibling", "Connection: close\r\n")},
			// Claims forged by the client do not help: the host finds no
			// signature.
			// Straight to the agent's listener: no record of an original
			// destination, so no signature.
			{nobody, s.h.Listen, get(marker("sibling direct"), "Connection: close\r\n")},
			{0, s.imds, get(marker("sibling forged"), "x-ms-azure-host-claims: {\"isRoot\": true}\r\nx-ms-azure-host-authorization: Azure-HMAC-SHA256 00000000-0000-0000-0000-000000000000 "+strings.Repeat("0", 64)+"\r\nConnection: close\r\n")},
		} {
			before := s.seq()
			o := s.raw(t, placement{uid: c.uid, cgroup: f}, ex(c.dst, c.req))[0]
			rs, _ := parseResponses(o.Data)
			recs := s.since(before)
			if c.dst == s.h.Listen {
				if len(rs) != 1 || rs[0].Status != 421 || rs[0].reason() != "misdirected" || len(recs) != 0 {
					t.Errorf("uid %d to the listener from a sibling cgroup: %+v, host %+v; want 421 misdirected and nothing at the host", c.uid, rs, recs)
				}
				continue
			}
			if len(rs) != 1 || rs[0].Status != 401 || len(recs) != 1 || recs[0].Signed && recs[0].Valid || recs[0].Valid || recs[0].Status != 401 {
				t.Errorf("uid %d to %s from a sibling cgroup: responses %+v, host %+v; want one unsigned request the host rejected with 401", c.uid, c.dst, rs, recs)
				continue
			}
			t.Logf("uid %d to %s: %d; host: signed %v reason %s", c.uid, c.dst, rs[0].Status, recs[0].Signed, recs[0].Reason)
		}
	})
	t.Run("child cgroup", func(t *testing.T) {
		dir := filepath.Join(s.h.Cgroup, "attack-child")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bpftest.RemoveCgroup(t, dir) })
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		target := marker("child cgroup")
		before := s.seq()
		o := s.raw(t, placement{uid: nobody, cgroup: f}, ex(s.imds, get(target, "Connection: close\r\n")))[0]
		rs, _ := parseResponses(o.Data)
		recs := s.since(before)
		if len(rs) != 1 || rs[0].Status != 200 || len(recs) != 1 || !recs[0].Signed || !recs[0].Valid || *recs[0].IsRoot {
			t.Errorf("nobody from a cgroup below the agent's: %+v, host %+v; want 200, signed, isRoot false", rs, recs)
		}
	})
}

// testSOMark: the agent's exempt mark cannot be set without CAP_NET_ADMIN
// (uid 65534 gets EPERM and is redirected as usual); root in a network
// namespace of its own, or uid 65534 in a user and network namespace of
// its own, may set it there but cannot reach the host with it.
func testSOMark(t *testing.T, s *suite) {
	mark := int(daemon.ExemptMark)
	t.Run("uid 65534", func(t *testing.T) {
		target := marker("somark nobody")
		before := s.seq()
		o := s.raw(t, placement{uid: nobody}, exchange{Dst: s.imds.String(), Mark: mark, Data: []byte(get(target, "Connection: close\r\n"))})[0]
		if syscall.Errno(o.MarkErrno) != syscall.EPERM {
			t.Errorf("setsockopt SO_MARK %#x as uid 65534: errno %v; want EPERM", mark, syscall.Errno(o.MarkErrno))
		}
		rs, _ := parseResponses(o.Data)
		recs := s.since(before)
		if len(rs) != 1 || rs[0].Status != 200 || len(recs) != 1 || !recs[0].Signed || !recs[0].Valid || *recs[0].IsRoot {
			t.Errorf("after the failed setsockopt: %+v, host %+v; want redirected: 200, signed, isRoot false", rs, recs)
		}
	})
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("util-linux unshare(1) is needed: %v", err)
	}
	for _, c := range []struct {
		name string
		p    placement
	}{
		{"root in a new netns", placement{uid: 0, newNet: true}},
		{"uid 65534 in its own user and network namespace", placement{uid: nobody, wrap: []string{unshare, "--user", "--map-root-user", "--net"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.seq()
			outs := s.raw(t, c.p,
				exchange{Dst: s.imds.String(), Mark: mark, Data: []byte(get(marker("somark netns"), "Connection: close\r\n"))},
				exchange{Dst: s.wire.String(), Mark: mark, Data: []byte(get("/machine/?comp=goalstate", "Connection: close\r\n"))})
			for _, o := range outs {
				if o.MarkErrno != 0 {
					t.Errorf("setsockopt SO_MARK in the namespace: errno %v; want allowed there", syscall.Errno(o.MarkErrno))
				}
				if o.ConnectErrno == 0 {
					t.Errorf("connected with the exempt mark from another netns: %+v", o)
				}
				t.Logf("connect: %v", syscall.Errno(o.ConnectErrno))
			}
			if recs := s.since(before); len(recs) != 0 {
				t.Errorf("the host recorded %+v; want nothing", recs)
			}
		})
	}
}

// testExecAfterConnect: the policy grants /metadata/identity to the
// executable /usr/bin/bash. uid 65534 running bash gets a token; a
// process that connects and then execs bash on the socket (also naming
// its thread "bash" first) is still judged as the program that connected
// (identity: comm, and with BTF the executable's inode at connect()): it
// is denied and the host sees nothing.
func testExecAfterConnect(t *testing.T, s *suite) {
	req := get(token, "Connection: close\r\n")
	env := []string{"MSP_REQ=" + req}
	t.Run("bash connects", func(t *testing.T) {
		before := s.seq()
		script := fmt.Sprintf("exec 9<>/dev/tcp/%s/%d; %s", s.imds.Addr(), s.imds.Port(), execScript)
		out := s.run(t, placement{uid: nobody}, []string{"/usr/bin/bash", "-c", script}, env, nil)
		rs, _ := parseResponses(out)
		recs := s.since(before)
		if len(rs) != 1 || rs[0].Status != 200 || len(recs) != 1 || !recs[0].Signed || !recs[0].Valid {
			t.Fatalf("bash as uid 65534: %+v, host %+v; want 200, signed (the policy grants bash)", rs, recs)
		}
	})
	for _, comm := range []string{"", "bash"} {
		t.Run("exec after connect, comm "+map[string]string{"": "attackclient"}[comm]+comm, func(t *testing.T) {
			before := s.seq()
			spec, _ := json.Marshal([]exchange{{Dst: s.imds.String(), Data: []byte(req), ExecBash: true, Comm: comm}})
			out := s.run(t, placement{uid: nobody}, []string{clientBinary}, []string{clientEnv + "=1"}, spec)
			rs, _ := parseResponses(out)
			if len(rs) != 1 || rs[0].Status != 403 || rs[0].reason() != "privilege-identity-mismatch" {
				t.Errorf("answer %+v (raw %q); want 403 privilege-identity-mismatch", rs, out)
			}
			if recs := s.since(before); len(recs) != 0 {
				t.Errorf("the host recorded %+v; want nothing", recs)
			}
			eventually(t, "the denial audited", func() bool {
				b, _ := os.ReadFile(filepath.Join(s.h.Dir, "log", "audit.jsonl"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				last := lines[len(lines)-1]
				if strings.Contains(last, `"reason":"privilege-identity-mismatch"`) {
					t.Logf("audit: %s", last[strings.Index(last, `"caller"`):])
					return true
				}
				return false
			})
		})
	}
}

// testOtherNetns: a process in a new network namespace has its own
// loopback and does not reach the host (netnsPolicy pass); with
// netnsPolicy deny its connect is refused with EPERM. Runs last: it
// changes the configuration, which restarts the agent's components.
func testOtherNetns(t *testing.T, s *suite) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("util-linux unshare(1) is needed: %v", err)
	}
	userns := []string{unshare, "--user", "--map-root-user", "--net"}
	try := func(t *testing.T, want syscall.Errno, wantOr syscall.Errno) {
		for _, p := range []placement{{uid: 0, newNet: true}, {uid: nobody, newNet: true}, {uid: nobody, wrap: userns}} {
			before := s.seq()
			outs := s.raw(t, p,
				ex(s.imds, get(marker("netns"), "Connection: close\r\n")),
				ex(s.wire, get("/machine/?comp=goalstate", "Connection: close\r\n")),
				exchange{Dst: fmt.Sprintf("[::ffff:%s]:%d", s.imds.Addr(), s.imds.Port()), Data: []byte(get(marker("netns mapped"), "Connection: close\r\n"))})
			for _, o := range outs {
				if e := syscall.Errno(o.ConnectErrno); e != want && e != wantOr {
					t.Errorf("uid %d (wrap %v) from a new netns: connect errno %v (%s); want %v", p.uid, p.wrap != nil, e, o.Err, want)
				}
			}
			if recs := s.since(before); len(recs) != 0 {
				t.Errorf("the host recorded %+v; want nothing", recs)
			}
		}
	}
	t.Run("pass", func(t *testing.T) {
		// Its loopback is down and empty: unreachable.
		try(t, syscall.ENETUNREACH, syscall.ECONNREFUSED)
	})
	t.Run("deny", func(t *testing.T) {
		// A change of netnsPolicy restarts the agent (exit 75, for
		// systemd to start it again): do what systemd does.
		if err := s.h.Stop(syscall.SIGTERM); err != nil {
			t.Fatalf("stop: %v", err)
		}
		s.h.Config["netnsPolicy"] = "deny"
		s.h.WriteConfig()
		s.h.Start()
		try(t, syscall.EPERM, syscall.EPERM)
		// The agent's own cgroup still works, signed.
		if r := s.h.Curl(nobody, "GET", s.h.URL(hostproto.IMDS, marker("after deny"))); r.Status != 200 {
			t.Errorf("nobody in the agent's cgroup after the restart: %+v; want 200", r)
		}
		if rec := s.h.LastRecord(hostproto.IMDS, marker("after deny")); rec == nil || !rec.Signed || !rec.Valid {
			t.Errorf("after the restart: %+v; want signed and valid", rec)
		}
	})
}
