package rulefile_test

import (
	"errors"
	"testing"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

const imdsPolicy = `{"defaultAccess":"deny","mode":"enforce","id":"imds-test","rules":{
  "privileges":[{"name":"instance","path":"/metadata/instance","queryParameters":{"api-version":"2021-02-01"}}],
  "roles":[{"name":"reader","privileges":["instance"]}],
  "identities":[{"name":"alice","userName":"alice"}],
  "roleAssignments":[{"role":"reader","identities":["alice"]}]}}`

// FuzzParseRules feeds arbitrary documents to both strict loaders: they
// must not panic, must fail with a *ValidationError, and whatever they
// accept must compile without warnings (strict input has no defects) and
// decide without panicking.
func FuzzParseRules(f *testing.F) {
	for _, seed := range []string{
		imdsPolicy,
		`{"defaultAccess":"deny","rules":{"privileges":[{"name":"g","path":"/machine/","queryParameters":{"comp":"goalstate"}}],"roles":[{"name":"a","privileges":["g"]}],"identities":[{"name":"r","userName":"root"}],"roleAssignments":[{"role":"a","identities":["r"]}]}}`,
		`{"defaultAccess":"allow"}`, `{"mode":"audit"}`, "\xef\xbb\xbf{}", `{"a":1,"a":2}`,
		`{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/p","queryParameters":{"k":"v"}}],"roles":[{"name":"r","privileges":["p"]}],"identities":[{"name":"i","groupName":"g"}],"roleAssignments":[{"role":"r","identities":["i"]}]}}`,
		`[`, `{"rules":{"privileges":[{"name":"p","path":"/a","path":"/b"}]}}`, `{} {}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) (hostproto.AuthorizationItem, error){rulefile.ParseItem, rulefile.ParseSettingsItem, rulefile.ParseLocal} {
			it, err := parse(data)
			if err != nil {
				var ve *rulefile.ValidationError
				if !errors.As(err, &ve) || len(ve.Problems) == 0 {
					t.Fatalf("error %v is not a non-empty *ValidationError", err)
				}
				continue
			}
			if it.DefaultAccess == "" {
				it.DefaultAccess = "deny" // a local file may leave it out
			}
			if it.Mode == "" {
				it.Mode = "enforce" // a local file never carries one, a settings item may not
			}
			s := authz.Compile(it)
			for _, w := range s.Warnings() {
				if w != "rules: some of privileges, roles, identities and roleAssignments are missing: no privilege is built and every decision falls to defaultAccess" {
					t.Fatalf("strictly loaded item compiled with warning %q", w)
				}
			}
			s.Decide(authz.Request{Endpoint: hostproto.IMDS, Method: "GET", Target: "/metadata/instance?api-version=2021-02-01"}, authz.Caller{UID: 1000, UserName: "alice", Groups: []string{"users"}, ExePath: "/usr/bin/curl", ProcessName: "curl"})
		}
	})
}
