package sign

import (
	"sort"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

// referenceStringToSign is host-protocol.md §8.2–§8.4 written as plainly as
// the spec's pseudo-code, with maps and strings. The fuzz target checks the
// allocation-free implementation against it.
func referenceStringToSign(method, target string, headers []rawhttp.Header, body []byte) string {
	m := map[string]string{}
	for _, h := range headers {
		m[string(appendLower(nil, h.Name))] = h.Value
	}
	var names []string
	for n := range m {
		if n != AuthorizationHeader {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(method + "\n" + string(body) + "\n")
	for _, n := range names {
		b.WriteString(n + ":" + strings.Trim(m[n], " \t") + "\n")
	}
	path, query, hasQuery := strings.Cut(target, "?")
	b.WriteString(path + "\n")
	if hasQuery {
		pairs := map[string][2]string{}
		for _, piece := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(piece, "=")
			if k == "" {
				continue
			}
			k = string(appendLower(nil, k))
			pairs[k+v] = [2]string{k, v}
		}
		var keys []string
		for mk := range pairs {
			keys = append(keys, mk)
		}
		sort.Strings(keys)
		var out []string
		for _, mk := range keys {
			if p := pairs[mk]; p[1] == "" {
				out = append(out, mk)
			} else {
				out = append(out, p[0]+"="+p[1])
			}
		}
		b.WriteString(strings.Join(out, "&"))
	}
	return b.String()
}

// FuzzSign: never panics on any input (non-ASCII values, huge inputs,
// malformed queries), agrees with the reference implementation, verifies
// its own output, and canonicalizes queries idempotently.
func FuzzSign(f *testing.F) {
	f.Add("GET", "/metadata/instance?api-version=2021-02-01&format=json", "Host", "169.254.169.254", "Metadata", " true ", []byte(""))
	f.Add("POST", "/machine/?comp=telemetrydata", "Content-Type", "text/xml", "X-A", "caf\xc3\xa9", []byte("<x/>"))
	f.Add("PUT", "/x?x=y&xy&=z&&a=1&A=1&a=2", "x-ms-azure-host-authorization", "forged", "host", "\t", []byte{0, 0xff})
	f.Add("GET", "/m?", "", "", "a", "b", []byte(nil))
	f.Fuzz(func(t *testing.T, method, target, n1, v1, n2, v2 string, body []byte) {
		headers := []rawhttp.Header{{Name: n1, Value: v1}, {Name: n2, Value: v2}, {Name: n1, Value: v2}}
		got := string(StringToSign(method, target, headers, body))
		if want := referenceStringToSign(method, target, headers, body); got != want {
			t.Fatalf("string to sign differs from the reference:\n got %q\nwant %q", got, want)
		}
		s, err := NewSigner(strings.Repeat("ab", 32), "e3882f98-da8d-4410-8394-06c23462781c")
		if err != nil {
			t.Fatal(err)
		}
		auth := s.Authorization(method, target, headers, body)
		signed := append(headers, rawhttp.Header{Name: AuthorizationHeader, Value: auth})
		if err := s.Verify(method, target, signed, body); err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}
		_, q := SplitTarget(target)
		c := CanonicalQuery(q)
		if again := CanonicalQuery(c); again != c {
			t.Fatalf("canonical query not idempotent: %q -> %q -> %q", q, c, again)
		}
	})
}

func TestManyHeadersAndPairs(t *testing.T) {
	// More items than the stack arrays hold must still be exact.
	var headers []rawhttp.Header
	var q []string
	for i := 0; i < 3*maxStackItems; i++ {
		headers = append(headers, rawhttp.Header{Name: "X-H" + strings.Repeat("z", i%7) + string(rune('a'+i%26)), Value: strings.Repeat("v", i)})
		q = append(q, "k"+string(rune('A'+i%26))+"="+strings.Repeat("w", i%5))
	}
	target := "/p?" + strings.Join(q, "&")
	if got, want := string(StringToSign("GET", target, headers, nil)), referenceStringToSign("GET", target, headers, nil); got != want {
		t.Fatalf("large input differs from the reference")
	}
}

// appendLower appends the ASCII-lower-cased s to dst (non-ASCII bytes are
// kept as they are); only the reference implementation uses it.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, toLower(s[i]))
	}
	return dst
}
