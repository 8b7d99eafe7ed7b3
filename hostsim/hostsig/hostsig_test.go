package hostsig

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// vectorsFile is the repository's copy of the spec's vectors
// (agent/sign's TestVectorsMatchSpec keeps it equal to the spec).
const vectorsFile = "../../agent/sign/testdata/test-vectors.json"

type vectors struct {
	HMAC []struct {
		Name, KeyHex, Message, Signature string
	}
	Query []struct {
		Name, Target, Path, Canonical string
	}
	Requests []struct {
		Name, KeyHex, KeyGUID, Method, Target, Body string
		Headers                                     []Header
		StringToSign, Signature, Authorization      string
	}
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		HMAC []struct {
			Name    string `json:"name"`
			KeyHex  string `json:"key_hex"`
			Message string `json:"message"`
			Sig     string `json:"expected_signature_hex"`
		} `json:"hmac_vectors"`
		Query []struct {
			Name   string `json:"name"`
			Target string `json:"raw_path_and_query"`
			Path   string `json:"expected_path"`
			Canon  string `json:"expected_canonical_query"`
		} `json:"query_canonicalization_vectors"`
		Requests []struct {
			Name    string `json:"name"`
			KeyHex  string `json:"key_hex"`
			KeyGUID string `json:"key_guid"`
			Method  string `json:"method"`
			Target  string `json:"raw_path_and_query"`
			Headers []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"headers"`
			Body string `json:"body"`
			STS  string `json:"expected_string_to_sign"`
			Sig  string `json:"expected_signature_hex"`
			Auth string `json:"expected_authorization_header"`
		} `json:"request_vectors"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", vectorsFile, err)
	}
	var v vectors
	for _, h := range raw.HMAC {
		v.HMAC = append(v.HMAC, struct{ Name, KeyHex, Message, Signature string }{h.Name, h.KeyHex, h.Message, h.Sig})
	}
	for _, q := range raw.Query {
		v.Query = append(v.Query, struct{ Name, Target, Path, Canonical string }{q.Name, q.Target, q.Path, q.Canon})
	}
	for _, r := range raw.Requests {
		var hs []Header
		for _, h := range r.Headers {
			hs = append(hs, Header{h.Name, h.Value})
		}
		v.Requests = append(v.Requests, struct {
			Name, KeyHex, KeyGUID, Method, Target, Body string
			Headers                                     []Header
			StringToSign, Signature, Authorization      string
		}{r.Name, r.KeyHex, r.KeyGUID, r.Method, r.Target, r.Body, hs, r.STS, r.Sig, r.Auth})
	}
	if len(v.Requests) < 11 || len(v.HMAC) < 1 || len(v.Query) < 1 {
		t.Fatalf("vector file looks truncated: %d request, %d hmac, %d query vectors", len(v.Requests), len(v.HMAC), len(v.Query))
	}
	return v
}

func mustKey(t testing.TB, h string) []byte {
	t.Helper()
	k, err := hex.DecodeString(h)
	if err != nil || len(k) != 32 {
		t.Fatalf("key %q: %v", h, err)
	}
	return k
}

// TestOracleMatchesSpecVectors: the host's own §8 gives every query and
// request vector's canonical form, string to sign, MAC and header value.
func TestOracleMatchesSpecVectors(t *testing.T) {
	v := loadVectors(t)
	for _, q := range v.Query {
		t.Run("query "+q.Name, func(t *testing.T) {
			path, query := splitTarget(q.Target)
			if path != q.Path || CanonicalQuery(query) != q.Canonical {
				t.Errorf("path %q query %q; want %q %q", path, CanonicalQuery(query), q.Path, q.Canonical)
			}
		})
	}
	for _, r := range v.Requests {
		t.Run(r.Name, func(t *testing.T) {
			sts := StringToSign(r.Method, r.Target, r.Headers, []byte(r.Body))
			if string(sts) != r.StringToSign {
				t.Fatalf("string to sign\n%q\nwant\n%q", sts, r.StringToSign)
			}
			mac := MAC(mustKey(t, r.KeyHex), r.Method, r.Target, r.Headers, []byte(r.Body))
			if got := hex.EncodeToString(mac); got != r.Signature {
				t.Errorf("MAC %s; want %s", got, r.Signature)
			}
			if got := Authorization(r.KeyGUID, mac); got != r.Authorization {
				t.Errorf("header %q; want %q", got, r.Authorization)
			}
		})
	}
}

// TestStreamingMACEqualsWhole: the MAC of a body written in pieces equals
// the MAC over the whole string to sign.
func TestStreamingMACEqualsWhole(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	hs := []Header{{"Host", " h "}, {"X-A", "1"}}
	body := []byte(strings.Repeat("abc\n", 1000))
	m := NewMAC(key, "PUT")
	for i := 0; i < len(body); i += 97 {
		m.Write(body[i:min(i+97, len(body))])
	}
	if got, want := m.Sum("/p?b=1&a", hs), rawHMAC(key, StringToSign("PUT", "/p?b=1&a", hs, body)); !bytes.Equal(got, want) {
		t.Errorf("streamed MAC %x; want %x", got, want)
	}
}

// TestParseAuthorization: exactly "Azure-HMAC-SHA256 <guid> <64 hex>",
// single spaces; the guid is lower-cased.
func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	guid := "E3882F98-DA8D-4410-8394-06C23462781C"
	for _, tt := range []struct {
		name, v string
		ok      bool
	}{
		{"valid", "Azure-HMAC-SHA256 " + guid + " " + sig, true},
		{"surrounding white space", " \tAzure-HMAC-SHA256 " + guid + " " + sig + " ", true},
		{"double space", "Azure-HMAC-SHA256  " + guid + " " + sig, false},
		{"scheme case", "azure-hmac-sha256 " + guid + " " + sig, false},
		{"truncated", "Azure-HMAC-SHA256 " + guid + " " + sig[:63], false},
		{"overlong", "Azure-HMAC-SHA256 " + guid + " " + sig + "0", false},
		{"overlong by a byte", "Azure-HMAC-SHA256 " + guid + " " + sig + "00", false},
		{"not hex", "Azure-HMAC-SHA256 " + guid + " " + sig[:62] + "zz", false},
		{"bad guid", "Azure-HMAC-SHA256 e3882f98da8d-4410-8394-06c23462781c0 " + sig, false},
		{"extra field", "Azure-HMAC-SHA256 " + guid + " " + sig + " x", false},
		{"empty", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseAuthorization(tt.v)
			if tt.ok != (err == nil) {
				t.Fatalf("err %v; want ok=%v", err, tt.ok)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v; want ErrMalformed", err)
			}
			if tt.ok && (p.GUID != strings.ToLower(guid) || hex.EncodeToString(p.MAC) != sig) {
				t.Errorf("parsed %+v", p)
			}
		})
	}
}

// TestCheckDecidesByComparator: Check's verdict is the comparator's, and
// nil means hmac.Equal: equal MACs pass, any other MAC fails.
func TestCheckDecidesByComparator(t *testing.T) {
	a := bytes.Repeat([]byte{1}, 32)
	b := bytes.Clone(a)
	b[31] ^= 1
	if Check(nil, a, bytes.Clone(a)) != nil || Check(nil, b, a) == nil || Check(nil, a[:31], a) == nil {
		t.Error("hmac.Equal default: want equal accepted, other rejected")
	}
	yes := func(x, y []byte) bool { return true }
	if Check(yes, b, a) != nil {
		t.Error("Check overrode the comparator's yes: something besides the comparator decides")
	}
}
