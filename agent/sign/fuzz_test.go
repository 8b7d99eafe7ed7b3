package sign

import (
	"sort"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

// referenceStringToSign is host-protocol.md §8.2–§8.4 written as plainly as
// the spec's pseudo-code, with maps, sort and strings. It shares no helper
// with the code under test (its own ASCII lower-casing, trimming and
// target split), so a bug in one of those cannot hide in both.
func referenceStringToSign(method, target string, headers []rawhttp.Header, body []byte) string {
	m := map[string]string{}
	for _, h := range headers {
		m[refLower(h.Name)] = h.Value // last value wins
	}
	var names []string
	for n := range m {
		if n != "x-ms-azure-host-authorization" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(method + "\n" + string(body) + "\n")
	for _, n := range names {
		b.WriteString(n + ":" + strings.Trim(m[n], " \t") + "\n")
	}
	path, query := target, ""
	if i := strings.Index(target, "?"); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	b.WriteString(path + "\n")
	pairs := map[string][2]string{}
	for _, piece := range strings.Split(query, "&") {
		k, v := piece, ""
		if i := strings.Index(piece, "="); i >= 0 {
			k, v = piece[:i], piece[i+1:]
		}
		if k == "" {
			continue
		}
		k = refLower(k)
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
	return b.String()
}

// refLower lower-cases ASCII letters only, leaving every other byte.
func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c | 0x20
		}
	}
	return string(b)
}

// fuzzNames is a small pool so that generated headers repeat.
var fuzzNames = []string{"host", "accept", "x-dup", "x-a", "x-ab", "content-length", "metadata", "x-ms-azure-host-date", "x-ms-azure-host-claims", "x-ms-azure-host-authorization", "user-agent", "a", "x_y"}

// headersFrom builds 0–80 headers from shape (its first byte is the count,
// the following bytes pick name and letter case) with values taken in
// turn from the comma-separated values.
func headersFrom(shape []byte, values string) []rawhttp.Header {
	if len(shape) == 0 {
		return nil
	}
	n := int(shape[0]) % 81
	vals := strings.Split(values, ",")
	headers := make([]rawhttp.Header, 0, n)
	for i := 0; i < n; i++ {
		pick := shape[(i+1)%len(shape)] ^ byte(i*37)
		name := []byte(fuzzNames[int(pick)%len(fuzzNames)])
		for j := range name {
			if (int(pick)>>(j%8))&1 == 1 && name[j] >= 'a' && name[j] <= 'z' {
				name[j] -= 'a' - 'A'
			}
		}
		headers = append(headers, rawhttp.Header{Name: string(name), Value: vals[i%len(vals)]})
	}
	return headers
}

// FuzzSign: for 0–80 headers with repeated names in mixed case, never
// panics, agrees with the reference, verifies its own output, and
// canonicalizes queries idempotently.
func FuzzSign(f *testing.F) {
	f.Add("GET", "/metadata/instance?api-version=2021-02-01&format=json", []byte{3, 1, 2, 3}, "169.254.169.254, true ,*/*", []byte(""))
	f.Add("POST", "/machine/?comp=telemetrydata", []byte{60, 9, 200, 4, 4, 4, 77}, "text/xml,caf\xc3\xa9,\t", []byte("<x/>"))
	f.Add("PUT", "/x?x=y&xy&=z&&a=1&A=1&a=2", []byte{80, 2, 2, 2, 255, 128}, "forged, a ,b", []byte{0, 0xff})
	f.Add("GET", "/m?", []byte{0}, "", []byte(nil))
	f.Add("GET", "/q?x=y&xy&A=1&a=1&x=y&xy=&a=2&b&B&x=y&xy&c=3&C=3&x=y&xy&a=1&ab&a=b", []byte{1, 1}, "v", []byte(nil))
	f.Add("GET", "/", []byte{13, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, "1,2,3,4,5,6,7,8,9,10,11,12,13", []byte(nil))
	f.Fuzz(func(t *testing.T, method, target string, shape []byte, values string, body []byte) {
		headers := headersFrom(shape, values)
		got := string(StringToSign(method, target, headers, body))
		if want := referenceStringToSign(method, target, headers, body); got != want {
			t.Fatalf("%d headers: string to sign differs from the reference:\n got %q\nwant %q", len(headers), got, want)
		}
		s, err := NewSigner(strings.Repeat("ab", 32), "e3882f98-da8d-4410-8394-06c23462781c")
		if err != nil {
			t.Fatal(err)
		}
		auth := s.Authorization(method, target, headers, body)
		signed := append(headers[:len(headers):len(headers)], rawhttp.Header{Name: AuthorizationHeader, Value: auth})
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
