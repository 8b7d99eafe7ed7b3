package sign

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/rawhttp"
)

const (
	testKeyHex = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"
	testGUID   = "e3882f98-da8d-4410-8394-06c23462781c"
	otherGUID  = "0f0e0d0c-0b0a-4908-8706-050403020100"
)

// shuffleKeepingDuplicates permutes headers at random but keeps the wire
// order among headers whose names are equal ignoring case (that order
// decides which value wins, so it is part of the request).
func shuffleKeepingDuplicates(r *rand.Rand, hs []rawhttp.Header) []rawhttp.Header {
	groups := map[string][]rawhttp.Header{}
	var slots []string
	for _, h := range hs {
		k := refLower(h.Name)
		groups[k] = append(groups[k], h)
		slots = append(slots, k)
	}
	r.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	out := make([]rawhttp.Header, 0, len(hs))
	next := map[string]int{}
	for _, k := range slots {
		out = append(out, groups[k][next[k]])
		next[k]++
	}
	return out
}

// TestStringToSignIndependentOfHeaderOrder: for 13–60 headers with many
// repeated names in mixed case, every order that keeps the order among
// duplicates gives the same string to sign, equal to the reference. (The
// sort must be stable: an unstable one picks another duplicate's value.)
func TestStringToSignIndependentOfHeaderOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 60))
	names := []string{"X-Dup", "x-dup", "X-DUP", "Accept", "accept", "Host", "x-a", "X-B", "x-ms-azure-host-date", "Metadata"}
	for n := 13; n <= 60; n++ {
		var hs []rawhttp.Header
		for i := 0; i < n; i++ {
			hs = append(hs, rawhttp.Header{Name: names[r.IntN(len(names))], Value: " v" + strings.Repeat("x", i) + "\t"})
		}
		want := referenceStringToSign("GET", "/p?b=1&a=2", hs, nil)
		for k := 0; k < 5; k++ {
			perm := shuffleKeepingDuplicates(r, hs)
			if got := string(StringToSign("GET", "/p?b=1&a=2", perm, nil)); got != want {
				t.Fatalf("%d headers, order %d:\n got %q\nwant %q", n, k, got, want)
			}
		}
	}
}

func signedRequest(t *testing.T) (*Signer, []rawhttp.Header, string) {
	t.Helper()
	s, err := NewSigner(testKeyHex, testGUID)
	if err != nil {
		t.Fatal(err)
	}
	hs := []rawhttp.Header{{Name: "Host", Value: "169.254.169.254"}, {Name: "Metadata", Value: "true"}}
	auth := s.Authorization("GET", "/metadata/instance?api-version=2021-02-01", hs, nil)
	return s, hs, auth
}

// TestVerifyRejectsAnyAlteredSignature: a signature differing in any
// single hex digit (still valid hex) is ErrBadSignature; truncated,
// overlong or malformed headers are ErrMalformed; the valid MAC under
// another key guid is ErrUnknownKey; no header is ErrUnsigned. The last
// authorization header counts.
func TestVerifyRejectsAnyAlteredSignature(t *testing.T) {
	s, hs, auth := signedRequest(t)
	verify := func(vals ...string) error {
		all := append([]rawhttp.Header(nil), hs...)
		for _, v := range vals {
			all = append(all, rawhttp.Header{Name: "X-MS-Azure-Host-Authorization", Value: v})
		}
		return s.Verify("GET", "/metadata/instance?api-version=2021-02-01", all, nil)
	}
	if err := verify(auth); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for i := len(auth) - 64; i < len(auth); i++ {
		b := []byte(auth)
		b[i] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[i])]
		if err := verify(string(b)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("digit %d changed: %v; want ErrBadSignature", i-(len(auth)-64), err)
		}
	}
	f := strings.Fields(auth)
	for _, tt := range []struct {
		name string
		vals []string
		want error
	}{
		{"truncated by a digit", []string{auth[:len(auth)-1]}, ErrMalformed},
		{"truncated by a byte", []string{auth[:len(auth)-2]}, ErrMalformed},
		{"overlong by a digit", []string{auth + "0"}, ErrMalformed},
		{"overlong by a byte", []string{auth + "00"}, ErrMalformed},
		{"not hex", []string{auth[:len(auth)-2] + "zz"}, ErrMalformed},
		{"wrong scheme", []string{"Azure-HMAC-SHA1 " + f[1] + " " + f[2]}, ErrMalformed},
		{"two spaces", []string{f[0] + "  " + f[1] + " " + f[2]}, ErrMalformed},
		{"bad guid", []string{f[0] + " not-a-guid " + f[2]}, ErrMalformed},
		{"empty", []string{""}, ErrMalformed},
		{"valid MAC under another guid", []string{f[0] + " " + otherGUID + " " + f[2]}, ErrUnknownKey},
		{"unsigned", nil, ErrUnsigned},
		{"last one counts: forged after valid", []string{auth, f[0] + " " + f[1] + " " + strings.Repeat("0", 64)}, ErrBadSignature},
		{"last one counts: valid after forged", []string{"garbage", auth}, nil},
		{"guid case ignored", []string{f[0] + " " + strings.ToUpper(f[1]) + " " + f[2]}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := verify(tt.vals...); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
}

// TestParseAuthorization: exactly three single-space separated fields,
// the scheme, a guid and 64 characters.
func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("0a", 32)
	for _, tt := range []struct {
		in        string
		guid, sig string
		err       error
	}{
		{"Azure-HMAC-SHA256 " + testGUID + " " + sig, testGUID, sig, nil},
		{"Azure-HMAC-SHA256 " + strings.ToUpper(testGUID) + " " + sig, strings.ToUpper(testGUID), sig, nil},
		{"Azure-HMAC-SHA256 " + testGUID + " " + sig[1:], "", "", ErrMalformed},
		{"Azure-HMAC-SHA256 " + testGUID + " " + sig + "a", "", "", ErrMalformed},
		{"Azure-HMAC-SHA256 " + testGUID, "", "", ErrMalformed},
		{"Azure-HMAC-SHA256 " + testGUID + " " + sig + " ", "", "", ErrMalformed},
		{"azure-hmac-sha256 " + testGUID + " " + sig, "", "", ErrMalformed},
		{"Azure-HMAC-SHA256 " + testGUID[1:] + " " + sig, "", "", ErrMalformed},
		{"", "", "", ErrMalformed},
	} {
		guid, s, err := ParseAuthorization(tt.in)
		if err != tt.err || guid != tt.guid || s != tt.sig {
			t.Errorf("ParseAuthorization(%q) = %q, %q, %v; want %q, %q, %v", tt.in, guid, s, err, tt.guid, tt.sig, tt.err)
		}
	}
}

// TestVerifyDecidesInConstantTime reads Verify's source: the signature
// comparison that decides must be subtle.ConstantTimeCompare or
// hmac.Equal, and nothing else may compare the presented signature with
// the expected one (no ==, bytes.Equal, bytes.HasPrefix, string
// comparison or loop over them) — any of those could return early on the
// first differing byte.
func TestVerifyDecidesInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "signer.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var verify *ast.FuncDecl
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "Verify" && fd.Recv != nil {
			verify = fd
		}
	}
	if verify == nil {
		t.Fatal("no (*Signer).Verify in signer.go")
	}
	// The identifiers holding the expected MAC: assigned from s.sum.
	secret := map[string]bool{}
	ctCalls := 0
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Rhs) == 1 {
			if c, ok := as.Rhs[0].(*ast.CallExpr); ok {
				if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "sum" {
					for _, l := range as.Lhs {
						secret[l.(*ast.Ident).Name] = true
					}
				}
			}
		}
		return true
	})
	if len(secret) == 0 {
		t.Fatal("Verify no longer computes the MAC with s.sum; update this test with the new shape")
	}
	isCT := func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		pkg, _ := sel.X.(*ast.Ident)
		return pkg != nil && (pkg.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare" || pkg.Name == "hmac" && sel.Sel.Name == "Equal")
	}
	// mentions reports whether n uses the expected MAC other than as an
	// argument of the constant-time comparison.
	mentions := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(m ast.Node) bool {
			if m != n && isCT(m) {
				return false
			}
			if id, ok := m.(*ast.Ident); ok && secret[id.Name] {
				found = true
			}
			return !found
		})
		return found
	}
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			name := ""
			if pkg != nil {
				name = pkg.Name + "." + sel.Sel.Name
			}
			switch {
			case isCT(x):
				if mentions(x) {
					ctCalls++
				}
			case mentions(x) && sel.Sel.Name != "sum":
				t.Errorf("%s: %s is applied to the expected MAC; only subtle.ConstantTimeCompare or hmac.Equal may compare it", fset.Position(x.Pos()), name)
			}
		case *ast.BinaryExpr:
			if (x.Op == token.EQL || x.Op == token.NEQ || x.Op == token.LSS || x.Op == token.GTR) && mentions(x) {
				t.Errorf("%s: the expected MAC is compared with %s", fset.Position(x.Pos()), x.Op)
			}
		case *ast.RangeStmt:
			if mentions(x.X) {
				t.Errorf("%s: a loop walks the expected MAC", fset.Position(x.Pos()))
			}
		case *ast.IndexExpr:
			if mentions(x.X) {
				t.Errorf("%s: the expected MAC is indexed byte by byte", fset.Position(x.Pos()))
			}
		}
		return true
	})
	if ctCalls != 1 {
		t.Errorf("Verify compares the expected MAC with subtle.ConstantTimeCompare/hmac.Equal %d times; want exactly 1", ctCalls)
	}
}
