package authz

import (
	"fmt"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

// benchItem builds a policy of n privileges in a realistic shape: a few
// IMDS paths with api-version constraints and many per-application
// subtrees, each granted to its own identity.
func benchItem(n int) hostproto.AuthorizationItem {
	r := &hostproto.Rules{
		Privileges:      []hostproto.Privilege{},
		Roles:           []hostproto.Role{},
		Identities:      []hostproto.Identity{},
		RoleAssignments: []hostproto.RoleAssignment{},
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%d", i)
		var p hostproto.Privilege
		switch i % 4 {
		case 0:
			p = hostproto.Privilege{Name: name, Path: fmt.Sprintf("/metadata/instance/app%d", i), QueryParameters: map[string]string{"api-version": "2021-02-01"}}
		case 1:
			p = hostproto.Privilege{Name: name, Path: fmt.Sprintf("/metadata/identity/oauth2/token/app%d", i)}
		case 2:
			p = hostproto.Privilege{Name: name, Path: fmt.Sprintf("/machine/app%d/", i), QueryParameters: map[string]string{"comp": "goalstate", "incarnation": "1"}}
		default:
			p = hostproto.Privilege{Name: name, Path: fmt.Sprintf("/app%d/data", i)}
		}
		user := fmt.Sprintf("user%d", i)
		r.Privileges = append(r.Privileges, p)
		r.Roles = append(r.Roles, hostproto.Role{Name: "r" + name, Privileges: []string{name}})
		r.Identities = append(r.Identities, hostproto.Identity{Name: "i" + name, UserName: &user})
		r.RoleAssignments = append(r.RoleAssignments, hostproto.RoleAssignment{Role: "r" + name, Identities: []string{"i" + name}})
	}
	// The privileges every request in the benchmark walks through.
	r.Privileges = append(r.Privileges,
		hostproto.Privilege{Name: "instance", Path: "/metadata/instance", QueryParameters: map[string]string{"api-version": "2021-02-01"}},
		hostproto.Privilege{Name: "mi", Path: "/metadata/identity"})
	r.Roles = append(r.Roles, hostproto.Role{Name: "reader", Privileges: []string{"instance", "mi"}})
	r.Identities = append(r.Identities, hostproto.Identity{Name: "alice", UserName: ptr("alice"), ExePath: ptr("/usr/bin/curl")})
	r.RoleAssignments = append(r.RoleAssignments, hostproto.RoleAssignment{Role: "reader", Identities: []string{"alice"}})
	return hostproto.AuthorizationItem{DefaultAccess: "deny", Mode: "enforce", Rules: r}
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		s := Compile(benchItem(n))
		for _, r := range []struct {
			name   string
			target string
			want   Verdict
		}{
			{"granted", "/metadata/instance/compute/network?api-version=2021-02-01&format=json", Allow},
			{"embedded-query", "/metadata/identity/oauth2/token%3Fapi-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", Allow},
			{"default", "/machine/?comp=goalstate", Deny},
		} {
			req := Request{Endpoint: hostproto.IMDS, Method: "GET", Target: r.target}
			b.Run(fmt.Sprintf("privileges=%d/%s", n, r.name), func(b *testing.B) {
				if d := s.Decide(req, alice); d.Verdict != r.want {
					b.Fatalf("decision %v/%s; want %v", d.Verdict, d.Reason, r.want)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s.Decide(req, alice)
				}
			})
		}
	}
}

func BenchmarkDecideParallel(b *testing.B) {
	s := Compile(benchItem(1000))
	req := Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance/compute?api-version=2021-02-01"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Decide(req, alice)
		}
	})
}

func TestDecideDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items; run without -race")
	}
	s := Compile(benchItem(1000))
	req := Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/identity/oauth2/token%3Fapi-version=2018-02-01&resource=x&a=1&b=2"}
	s.Decide(req, alice) // warm the pool
	if n := testing.AllocsPerRun(1000, func() { s.Decide(req, alice) }); n != 0 {
		t.Errorf("Decide allocates %v times per call; want 0", n)
	}
}

// BenchmarkCheckTarget measures the proxy's per-request strict reading
// of the target (authz.CheckTarget) on an accepted target.
func BenchmarkCheckTarget(b *testing.B) {
	const target = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
	if err := CheckTarget(target); err != nil {
		b.Fatal(err)
	}
	b.Run("func", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = CheckTarget(target)
		}
	})
	b.Run("reused-canonical", func(b *testing.B) {
		var c Canonical
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = c.CheckTarget(target)
		}
	})
}

func TestCanonicalCheckTargetDoesNotAllocate(t *testing.T) {
	const target = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
	var c Canonical
	_ = c.CheckTarget(target)
	if n := testing.AllocsPerRun(1000, func() { _ = c.CheckTarget(target) }); n != 0 {
		t.Errorf("Canonical.CheckTarget allocates %v times per call; want 0", n)
	}
}
