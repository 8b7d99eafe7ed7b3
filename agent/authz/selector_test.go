package authz

import (
	"fmt"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

// TestSelectorNeverMatchesEmptyCallerField: for every selector kind (user,
// group, exe, process), with an empty or a non-empty selector value, alone
// or beside a selector the caller does satisfy, a caller whose field is
// empty (the proxy leaves it so when /proc cannot be trusted or the uid has
// no name) is never granted — root or not.
func TestSelectorNeverMatchesEmptyCallerField(t *testing.T) {
	type kind struct {
		name  string
		set   func(id *hostproto.Identity, v string)
		clear func(c *Caller)
	}
	kinds := []kind{
		{"userName", func(id *hostproto.Identity, v string) { id.UserName = &v }, func(c *Caller) { c.UserName = "" }},
		{"groupName", func(id *hostproto.Identity, v string) { id.GroupName = &v }, func(c *Caller) { c.Groups = nil }},
		{"groupName (empty group listed)", func(id *hostproto.Identity, v string) { id.GroupName = &v }, func(c *Caller) { c.Groups = []string{""} }},
		{"exePath", func(id *hostproto.Identity, v string) { id.ExePath = &v }, func(c *Caller) { c.ExePath = "" }},
		{"processName", func(id *hostproto.Identity, v string) { id.ProcessName = &v }, func(c *Caller) { c.ProcessName = "" }},
	}
	callers := map[string]Caller{
		"alice": {UID: 1000, Root: false, UserName: "alice", Groups: []string{"alice", "users"}, ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 12},
		"root":  {UID: 0, Root: true, UserName: "root", Groups: []string{"root"}, ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 10},
	}
	for _, k := range kinds {
		for cname, full := range callers {
			caller := full
			k.clear(&caller)
			for _, value := range []string{"", "x"} {
				for _, companion := range []bool{false, true} {
					name := fmt.Sprintf("%s=%q companion=%v caller=%s", k.name, value, companion, cname)
					t.Run(name, func(t *testing.T) {
						id := hostproto.Identity{Name: "who"}
						k.set(&id, value)
						if companion {
							// A second selector the caller satisfies must not
							// make up for the empty field.
							p := full.ProcessName
							if k.name == "processName" {
								u := full.UserName
								id.UserName = &u
							} else {
								id.ProcessName = &p
							}
						}
						s := Compile(hostproto.AuthorizationItem{Mode: "enforce", DefaultAccess: "deny", Rules: &hostproto.Rules{
							Privileges:      []hostproto.Privilege{{Name: "p", Path: "/metadata/instance"}},
							Roles:           []hostproto.Role{{Name: "r", Privileges: []string{"p"}}},
							Identities:      []hostproto.Identity{id},
							RoleAssignments: []hostproto.RoleAssignment{{Role: "r", Identities: []string{"who"}}},
						}})
						d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance"}, caller)
						if d.Verdict != Deny || d.Identity != "" {
							t.Errorf("caller %+v with an empty %s got %v/%s via identity %q; want a deny", caller, k.name, d.Verdict, d.Reason, d.Identity)
						}
					})
				}
			}
		}
	}
	// The same selectors do grant a caller that has the field, so the
	// denials above are about the empty field.
	v := "alice"
	s := Compile(hostproto.AuthorizationItem{Mode: "enforce", DefaultAccess: "deny", Rules: &hostproto.Rules{
		Privileges:      []hostproto.Privilege{{Name: "p", Path: "/metadata/instance"}},
		Roles:           []hostproto.Role{{Name: "r", Privileges: []string{"p"}}},
		Identities:      []hostproto.Identity{{Name: "who", UserName: &v}},
		RoleAssignments: []hostproto.RoleAssignment{{Role: "r", Identities: []string{"who"}}},
	}})
	if d := s.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance"}, callers["alice"]); d.Verdict != Allow {
		t.Errorf("control: alice by userName got %v/%s; want Allow", d.Verdict, d.Reason)
	}
}
