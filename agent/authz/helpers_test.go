package authz

import (
	"testing"

	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

// Callers used across the tests.
var (
	rootCurl = Caller{UID: 0, Root: true, UserName: "root", Groups: []string{"root"}, ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 10}
	alice    = Caller{UID: 1000, UserName: "alice", Groups: []string{"alice", "users"}, ExePath: "/usr/bin/curl", ProcessName: "curl", PID: 12}
	alicePy  = Caller{UID: 1000, UserName: "alice", Groups: []string{"alice", "users"}, ExePath: "/usr/bin/python3.11", ProcessName: "python3.11", PID: 13}
	bob      = Caller{UID: 1001, UserName: "bob", Groups: []string{"bob", "metadata-readers"}, ExePath: "/usr/bin/wget", ProcessName: "wget", PID: 14}
)

// mustItem parses a strict item or fails the test.
func mustItem(t testing.TB, doc string) hostproto.AuthorizationItem {
	t.Helper()
	it, err := rulefile.ParseItem([]byte(doc))
	if err != nil {
		t.Fatalf("ParseItem: %v", err)
	}
	return it
}

// mustCompile compiles a strict item document.
func mustCompile(t testing.TB, doc string) *Snapshot {
	t.Helper()
	return Compile(mustItem(t, doc))
}

// decideCase is one row of a decision table.
type decideCase struct {
	name     string
	snap     *Snapshot
	endpoint hostproto.Endpoint // zero means IMDS
	method   string             // empty means GET
	target   string
	caller   Caller
	want     Verdict
	reason   Reason
	priv     string // expected deciding privilege, checked when non-empty
}

func runDecide(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := tc.endpoint
			if ep == 0 {
				ep = hostproto.IMDS
			}
			m := tc.method
			if m == "" {
				m = "GET"
			}
			d := tc.snap.Decide(Request{Endpoint: ep, Method: m, Target: tc.target}, tc.caller)
			if d.Verdict != tc.want || d.Reason != tc.reason {
				t.Errorf("Decide(%s %s %q) = %v/%s (privilege %q); want %v/%s", ep, m, tc.target, d.Verdict, d.Reason, d.Privilege, tc.want, tc.reason)
			}
			if tc.priv != "" && d.Privilege != tc.priv {
				t.Errorf("deciding privilege = %q; want %q", d.Privilege, tc.priv)
			}
		})
	}
}

// withMode returns doc's snapshot compiled with another mode.
func withMode(t testing.TB, doc string, mode string) *Snapshot {
	t.Helper()
	it := mustItem(t, doc)
	it.Mode = mode
	return Compile(it)
}

// Policies shared by the invariant tests.
const (
	// imdsPolicy grants /metadata/instance (with api-version) to alice,
	// keeps the token path for root and scheduled events for alice.
	imdsPolicy = `{
  "defaultAccess": "deny", "mode": "enforce", "id": "imds-test",
  "rules": {
    "privileges": [
      {"name": "instance", "path": "/metadata/instance", "queryParameters": {"api-version": "2021-02-01"}},
      {"name": "token", "path": "/metadata/identity/oauth2/token"},
      {"name": "sched", "path": "/metadata/scheduledevents", "queryParameters": {"api-version": "2019-08-01"}}
    ],
    "roles": [
      {"name": "reader", "privileges": ["instance", "sched"]},
      {"name": "tokens", "privileges": ["token"]}
    ],
    "identities": [
      {"name": "alice", "userName": "alice"},
      {"name": "root", "userName": "root"}
    ],
    "roleAssignments": [
      {"role": "reader", "identities": ["alice"]},
      {"role": "tokens", "identities": ["root"]}
    ]
  }
}`
	// wirePolicy grants only comp=goalstate on /machine/ to root.
	wirePolicy = `{
  "defaultAccess": "deny", "mode": "enforce",
  "rules": {
    "privileges": [{"name": "goalstate", "path": "/machine/", "queryParameters": {"comp": "goalstate"}}],
    "roles": [{"name": "agent", "privileges": ["goalstate"]}],
    "identities": [{"name": "root", "userName": "root"}],
    "roleAssignments": [{"role": "agent", "identities": ["root"]}]
  }
}`
	// identityPolicy is open by default and keeps /metadata/identity for
	// root.
	identityPolicy = `{
  "defaultAccess": "allow", "mode": "enforce",
  "rules": {
    "privileges": [{"name": "mi", "path": "/metadata/identity"}],
    "roles": [{"name": "mi", "privileges": ["mi"]}],
    "identities": [{"name": "root", "userName": "root"}],
    "roleAssignments": [{"role": "mi", "identities": ["root"]}]
  }
}`
)
