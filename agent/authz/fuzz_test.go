package authz

import (
	"errors"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

// FuzzCanonical checks that the canonicaliser never panics, that
// everything it accepts renders to a form that parses back to itself
// (idempotence), and that Decide agrees with Parse on rejection.
func FuzzCanonical(f *testing.F) {
	for _, seed := range []string{
		"/", "/metadata/instance?api-version=2021-02-01", "/metadata/scheduledevents%3Fapi-version=2019-08-01",
		"/machine/%3Fcomp=certificates?comp=goalstate", "/a;p/b;q=1/", "/a%252Fb", "/a%zz%4", "/a?&&=v&k&k2=&=",
		"/%2e%2e/", "//x", "/a/./b", "/caf%C3%A9?x=%00", "/a/;x", "/a%3F%3F?b=%26", "/A/B%2FC?K=V+W",
	} {
		f.Add(seed)
	}
	snap := Compile(benchItem(20))
	f.Fuzz(func(t *testing.T, target string) {
		var c Canonical
		err := c.Parse(target)
		d := snap.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: target}, alice)
		if (err != nil) != (d.Reason == ReasonPathRejected) {
			t.Fatalf("Parse error %v but decision %v/%s", err, d.Verdict, d.Reason)
		}
		if err != nil {
			if !errors.Is(err, ErrPathRejected) {
				t.Fatalf("error %v does not match ErrPathRejected", err)
			}
			return
		}
		first := c.String()
		segs, query := c.Segments(), c.Query()
		var again Canonical
		if err := again.Parse(first); err != nil {
			t.Fatalf("canonical form %q of %q is rejected: %v", first, target, err)
		}
		if second := again.String(); second != first {
			t.Fatalf("not idempotent: %q -> %q -> %q", target, first, second)
		}
		if !equalStrings(segs, again.Segments()) || !equalPairs(query, again.Query()) {
			t.Fatalf("canonical form %q of %q parses to a different request", first, target)
		}
		// Same decision for the canonical form, where the exempt rule
		// cannot apply (it matches raw targets).
		if d2 := snap.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: first}, alice); d2 != d {
			t.Fatalf("decision for %q is %+v, for its canonical form %q %+v", target, d, first, d2)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalPairs(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
