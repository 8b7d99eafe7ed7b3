package attack

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/internal/agenttest"
)

const (
	nobody   = 65534
	instance = "/metadata/instance?api-version=2021-02-01"
	token    = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
)

// suite is the agent under attack and what the cases share.
type suite struct {
	h               *agenttest.Harness
	imds, wire, hga netip.AddrPort
	canary          *canary
}

// TestAttack runs every case against one agent: starting it once keeps
// the suite within its time budget. The cases run in order; the last ones
// change the configuration.
func TestAttack(t *testing.T) {
	requireRoot(t)
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.4"})
	root, bash := "root", "/usr/bin/bash"
	// IMDS: everything allowed but /metadata/identity, which only root
	// and bash may reach (authorization.md §4.1: a matched privilege never
	// falls back to defaultAccess).
	policy := map[string]any{
		"defaultAccess": "allow", "mode": "enforce",
		"rules": hostproto.Rules{
			Privileges:      []hostproto.Privilege{{Name: "identity", Path: "/metadata/identity"}},
			Roles:           []hostproto.Role{{Name: "tokens", Privileges: []string{"identity"}}},
			Identities:      []hostproto.Identity{{Name: "root", UserName: &root}, {Name: "bash", ExePath: &bash}},
			RoleAssignments: []hostproto.RoleAssignment{{Role: "tokens", Identities: []string{"root", "bash"}}},
		},
	}
	h.Config["settings"] = map[string]any{"imds": policy}
	h.WriteConfig()
	h.Start()
	a := h.Emu.Addrs()
	s := &suite{h: h,
		imds: netip.MustParseAddrPort(a.IMDS), wire: netip.MustParseAddrPort(a.WireServer), hga: netip.MustParseAddrPort(a.HostGA),
		canary: startCanary(t, "127.0.4.250:0"),
	}
	// A baseline: both users reach IMDS, signed, and the policy holds.
	if r := h.Curl(nobody, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("baseline: nobody to IMDS: %+v", r)
	}
	if r := h.Curl(nobody, "GET", h.URL(hostproto.IMDS, token)); r.Status != 403 || r.Reason != "privilege-identity-mismatch" {
		t.Fatalf("baseline: nobody to /metadata/identity: %+v; want 403 privilege-identity-mismatch", r)
	}
	if r := h.Curl(0, "GET", h.URL(hostproto.IMDS, token)); r.Status != 200 {
		t.Fatalf("baseline: root to /metadata/identity: %+v; want 200", r)
	}

	for _, c := range []struct {
		name string
		run  func(*testing.T, *suite)
	}{
		{"ListenerLoopbackOnly", testListenerLoopbackOnly},
		{"OtherDestinations", testOtherDestinations},
		{"Smuggling", testSmuggling},
		{"PathConfusion", testPathConfusion},
		{"ForgedHostHeaders", testForgedHostHeaders},
		{"DestinationSpellings", testDestinationSpellings},
		{"OtherCgroup", testOtherCgroup},
		{"SOMark", testSOMark},
		{"ExecAfterConnect", testExecAfterConnect},
		{"Replay", testReplay},
		{"FilePermissions", testFilePermissions},
		{"NoSecrets", testNoSecrets},
		{"OtherNetns", testOtherNetns},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
	if n := s.canary.count(); n != 0 {
		t.Errorf("the canary listener at %s accepted %d connections; want none", s.canary.addr, n)
	}
}

// seq is the emulator's latest record number.
func (s *suite) seq() uint64 {
	rs := s.h.Emu.Verifications(0)
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Seq
}

// since returns what the host recorded after seq, less the agent's own
// traffic (status polls, key acquisition and attestation), which runs
// concurrently with every case.
func (s *suite) since(seq uint64) []hostsim.Record {
	var out []hostsim.Record
	for _, r := range s.h.Emu.Verifications(seq) {
		if r.Class != "bootstrap" && r.Class != "attestation" {
			out = append(out, r)
		}
	}
	return out
}

// canary is a listener on another loopback address that nothing may
// reach: it counts the connections it accepts.
type canary struct {
	addr string
	n    atomic.Int64
}

func startCanary(t *testing.T, addr string) *canary {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &canary{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

func (c *canary) count() int64 { return c.n.Load() }

// get is a GET with a Host header and Metadata: true; extra header lines
// end in CRLF.
func get(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n" + strings.Join(extra, "") + "\r\n"
}

// marker is a distinct, legitimate IMDS target for a case.
func marker(name string) string {
	return instance + "&case=" + strings.NewReplacer(" ", "-", "/", "-", ",", "").Replace(name)
}

func ex(dst netip.AddrPort, data string) exchange {
	return exchange{Dst: dst.String(), Data: []byte(data)}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the attack suite runs as root (CI is root): it loads eBPF programs and runs clients as other users")
	}
}

var execCommand = exec.Command

// eventually retries f for up to 10 s, failing t (not the harness's test).
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
