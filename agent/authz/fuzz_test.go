package authz

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mspguest/msp/agent/authz/targettest"
	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// FuzzCanonical checks that the canonicaliser never panics, that
// everything it accepts renders to a form that parses back to itself
// (idempotence), that Decide, CheckTarget and the request reader agree
// with Parse on rejection, and that a target the strict reading accepts
// has the same path for the matcher and for a naive Windows-like reader
// (windowsPath: '\' as '/', %uNNNN, overlong and fullwidth forms, dot
// segments, trailing dots and spaces).
func FuzzCanonical(f *testing.F) {
	for _, seed := range []string{
		"/", "/metadata/instance?api-version=2021-02-01", "/metadata/scheduledevents%3Fapi-version=2019-08-01",
		"/machine/%3Fcomp=certificates?comp=goalstate", "/a;p/b;q=1/", "/a%252Fb", "/a%zz%4", "/a?&&=v&k&k2=&=",
		"/%2e%2e/", "//x", "/a/./b", "/caf%C3%A9?x=%00", "/a/;x", "/a%3F%3F?b=%26", "/A/B%2FC?K=V+W",
	} {
		f.Add(seed)
	}
	for _, sp := range targettest.Spellings() {
		f.Add(sp.Target)
	}
	for _, l := range targettest.Legitimates() {
		f.Add(l.Target)
	}
	snap := Compile(benchItem(20))
	f.Fuzz(func(t *testing.T, target string) {
		var c Canonical
		err := c.Parse(target)
		d := snap.Decide(Request{Endpoint: hostproto.IMDS, Method: "GET", Target: target}, alice)
		if err != nil {
			_, wantReason := refusal(err)
			if d.Verdict != Deny || d.Reason != wantReason {
				t.Fatalf("Parse error %v but decision %v/%s", err, d.Verdict, d.Reason)
			}
			var te *TargetError
			if cerr := CheckTarget(target); !errors.As(cerr, &te) || te.Reason != wantReason {
				t.Fatalf("Parse error %v but CheckTarget %v", err, cerr)
			}
			// The request reader refuses exactly the raw class.
			if isRaw(err) != (rawhttp.CheckTarget(target) != nil) {
				t.Fatalf("Parse error %v; rawhttp.CheckTarget %v", err, rawhttp.CheckTarget(target))
			}
			if !isRaw(err) && !errors.Is(err, ErrPathRejected) {
				t.Fatalf("error %v does not match ErrPathRejected", err)
			}
			return
		}
		if d.Reason == ReasonPathRejected || d.Reason == ReasonBadRequestLine {
			t.Fatalf("Parse accepted %q but Decide refused it: %s", target, d.Reason)
		}
		if cerr := CheckTarget(target); cerr != nil {
			t.Fatalf("Parse accepted %q but CheckTarget refused it: %v", target, cerr)
		}
		windowsAgrees(t, target, &c)
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

func isRaw(err error) bool {
	_, ok := err.(rawError)
	return ok
}

// windowsPath reads the path of a raw request-target as a lenient Windows
// host might (HTTP.sys, IIS, .NET; authorization.md I-24): %uNNNN and %XX
// decoded (a malformed escape stays literal), overlong UTF-8 and fullwidth
// forms folded to ASCII, '\' read as '/', the path cut at the first '?',
// dot segments removed (RFC 3986 §5.2.4), trailing dots and spaces of a
// segment stripped, ASCII case folded. It is naive on purpose: it stands
// for "some host that reads more into a target than we do".
func windowsPath(target string) string {
	rawPath, _, _ := strings.Cut(target, "?")
	var dec []byte
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == '%' && i+5 < len(rawPath) && (rawPath[i+1] == 'u' || rawPath[i+1] == 'U') {
			if r, err := strconv.ParseUint(rawPath[i+2:i+6], 16, 16); err == nil {
				dec = utf8.AppendRune(dec, rune(r))
				i += 5
				continue
			}
		}
		if c == '%' && i+2 < len(rawPath) {
			if v, err := strconv.ParseUint(rawPath[i+1:i+3], 16, 8); err == nil {
				dec = append(dec, byte(v))
				i += 2
				continue
			}
		}
		dec = append(dec, c)
	}
	// Fold overlong and look-alike encodings to ASCII, '\' to '/'.
	var folded []byte
	for i := 0; i < len(dec); {
		b := dec[i]
		switch {
		case (b == 0xc0 || b == 0xc1) && i+1 < len(dec) && dec[i+1]&0xc0 == 0x80:
			folded = append(folded, (b&1)<<6|dec[i+1]&0x3f)
			i += 2
			continue
		case b == 0xe0 && i+2 < len(dec) && dec[i+1]&0xe0 == 0x80 && dec[i+2]&0xc0 == 0x80:
			folded = append(folded, (dec[i+1]&0x1f)<<6|dec[i+2]&0x3f)
			i += 3
			continue
		case b >= 0x80:
			r, n := utf8.DecodeRune(dec[i:])
			if r >= 0xff01 && r <= 0xff5e {
				r -= 0xfee0
			}
			folded = utf8.AppendRune(folded, r)
			i += n
			continue
		case b == '\\':
			b = '/'
		}
		folded = append(folded, b)
		i++
	}
	p, _, _ := strings.Cut(string(folded), "?")
	var out []string
	for _, seg := range strings.Split(p, "/")[1:] {
		switch seg {
		case ".":
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, strings.TrimRight(seg, ". "))
	}
	return strings.ToLower("/" + strings.Join(out, "/"))
}

// windowsAgrees fails the test when the matcher's reading of an accepted
// target differs from windowsPath's (;params aside, which the matcher
// drops and the host keeps as part of the name).
func windowsAgrees(t *testing.T, target string, c *Canonical) {
	t.Helper()
	win := strings.Split(strings.TrimPrefix(windowsPath(target), "/"), "/")
	for i, seg := range win {
		win[i], _, _ = strings.Cut(seg, ";")
	}
	slash := win[len(win)-1] == ""
	if slash {
		win = win[:len(win)-1]
	}
	if segs := c.Segments(); !equalStrings(segs, win) || slash != c.slash {
		t.Fatalf("%q: the matcher reads segments %q (trailing slash %v), a Windows-like host %q (%v)", target, segs, c.slash, win, slash)
	}
}
