package settings

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mspguest/msp/handler/internal/testcert"
)

const imdsItem = `{"mode":"enforce","defaultAccess":"allow","rules":{"privileges":[{"name":"mi","path":"/metadata/identity"}],"roles":[{"name":"r","privileges":["mi"]}],"identities":[{"name":"svc","userName":"svc-backup"}],"roleAssignments":[{"role":"r","identities":["svc"]}]}}`

func TestParsePublic(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string // substrings of the problems, "path: message"; nil means valid
	}{
		{"empty", ``, nil},
		{"null", `null`, nil},
		{"empty object", `{}`, nil},
		{"full", `{"imds":` + imdsItem + `,"wireServer":{"defaultAccess":"deny"},"logLevel":"debug","netnsPolicy":"deny"}`, nil},
		{"no mode", `{"wireServer":{"defaultAccess":"allow"}}`, nil},
		{"unknown top-level field", `{"imsd":{}}`, []string{"$: additional properties 'imsd' not allowed"}},
		{"bad log level", `{"logLevel":"loud"}`, []string{"logLevel: value must be one of"}},
		{"bad netns policy", `{"netnsPolicy":"drop"}`, []string{"netnsPolicy: value must be one of"}},
		{"item without defaultAccess", `{"imds":{"mode":"audit"}}`, []string{"imds: missing property 'defaultAccess'"}},
		{"bad mode", `{"wireServer":{"defaultAccess":"deny","mode":"strict"}}`, []string{"wireServer.mode: 'strict' must be disabled, audit or enforce (any case)"}},
		{"dangling role (loader only)", `{"imds":{"defaultAccess":"deny","rules":{"privileges":[],"roles":[],"identities":[],"roleAssignments":[{"role":"nope","identities":["x"]}]}}}`, []string{"imds.rules.roleAssignments[0].role:"}},
		{"duplicate key in item (loader only)", `{"imds":{"defaultAccess":"deny","defaultAccess":"allow"}}`, []string{"imds"}},
		{"not an object", `[1]`, []string{"$: got array, want object"}},
		{"bad privilege type", `{"imds":{"defaultAccess":"deny","rules":{"privileges":[{"name":1,"path":"/"}]}}}`, []string{"imds.rules.privileges[0].name:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublic([]byte(tc.doc))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v; want valid", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v; want an *InvalidError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestPublicKeepsItemBytes: the agent reads the item with its own loader,
// so the handler must hand over the administrator's bytes (no mode added).
func TestPublicKeepsItemBytes(t *testing.T) {
	p, err := ParsePublic([]byte(`{"wireServer":{"defaultAccess":"deny"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.WireServer) != `{"defaultAccess":"deny"}` || p.IMDS != nil {
		t.Fatalf("got imds=%s wireServer=%s", p.IMDS, p.WireServer)
	}
}

func TestExamplesAreValidItems(t *testing.T) {
	for _, name := range []string{"imds-managed-identity.json", "imds-readers-audit.json", "wireserver-guest-agent.json"} {
		item, err := os.ReadFile(filepath.Join("../../examples", name))
		if err != nil {
			t.Fatal(err)
		}
		key := "imds"
		if strings.HasPrefix(name, "wireserver") {
			key = "wireServer"
		}
		if _, err := ParsePublic([]byte(`{"` + key + `":` + string(item) + `}`)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func makeFile(t *testing.T, public string, protected, thumb *string) []byte {
	t.Helper()
	hs := map[string]any{"publicSettings": json.RawMessage(public)}
	if protected != nil {
		hs["protectedSettings"] = *protected
	}
	if thumb != nil {
		hs["protectedSettingsCertThumbprint"] = *thumb
	}
	data, err := json.Marshal(map[string]any{"runtimeSettings": []any{map[string]any{"handlerSettings": hs}}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func ptr(s string) *string { return &s }

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	cert, err := testcert.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-value"
	enc := func(plain string) *string {
		s, err := cert.Encrypt([]byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return &s
	}
	dec := OpenSSL{CertDir: dir}
	for _, tc := range []struct {
		name      string
		file      []byte
		protected bool
		wantErr   string
	}{
		{"empty file", nil, false, ""},
		{"public only", makeFile(t, `{"logLevel":"info"}`, nil, nil), false, ""},
		{"null everything", makeFile(t, `null`, nil, nil), false, ""},
		{"protected object", makeFile(t, `{}`, enc(`{"key":"`+secret+`"}`), &cert.Thumbprint), true, ""},
		{"protected not an object", makeFile(t, `{}`, enc(`"`+secret+`"`), &cert.Thumbprint), false, "protectedSettings: decrypted protected settings are not a JSON object"},
		{"protected without thumbprint", makeFile(t, `{}`, enc(`{}`), nil), false, "protectedSettingsCertThumbprint is empty"},
		{"unknown certificate", makeFile(t, `{}`, enc(`{}`), ptr(strings.Repeat("A", 40))), false, "cannot decrypt with certificate"},
		{"bad base64", makeFile(t, `{}`, ptr("!!"), &cert.Thumbprint), false, "not valid base64"},
		{"garbage ciphertext", makeFile(t, `{}`, ptr("AAAA"), &cert.Thumbprint), false, "cannot decrypt"},
		{"two runtime settings", []byte(`{"runtimeSettings":[{},{}]}`), false, "runtimeSettings: want exactly one element, got 2"},
		{"invalid public", makeFile(t, `{"netnsPolicy":"x"}`, nil, nil), false, "netnsPolicy:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.file, dec)
			if tc.wantErr != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v; want an *InvalidError containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error leaks the protected settings: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.HasProtected != tc.protected || len(s.Hash) != 64 {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

type fakeDecrypter struct {
	out   []byte
	err   error
	calls *int
}

func (f fakeDecrypter) Decrypt(string, []byte) ([]byte, error) {
	*f.calls++
	return f.out, f.err
}

// TestOpenSSLFallback: cms failing (here: a ciphertext it cannot read)
// hands over to the fallback; both failing names both.
func TestOpenSSLFallback(t *testing.T) {
	dir := t.TempDir()
	cert, err := testcert.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	o := OpenSSL{CertDir: dir, Fallback: fakeDecrypter{out: []byte(`{}`), calls: &calls}}
	if out, err := o.Decrypt(cert.Thumbprint, []byte("not cms")); err != nil || string(out) != "{}" || calls != 1 {
		t.Fatalf("got %q, %v after %d fallback calls", out, err, calls)
	}
	o.Fallback = fakeDecrypter{err: errors.New("smime failed too"), calls: &calls}
	if _, err := o.Decrypt(cert.Thumbprint, []byte("not cms")); err == nil || !strings.Contains(err.Error(), "openssl cms") || !strings.Contains(err.Error(), "smime failed too") {
		t.Fatalf("got %v; want both failures named", err)
	}
	// A good ciphertext never reaches the fallback.
	b64, err := cert.Encrypt([]byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := base64Decode(b64)
	calls = 0
	if out, err := o.Decrypt(cert.Thumbprint, der); err != nil || string(out) != `{"a":1}` || calls != 0 {
		t.Fatalf("got %q, %v, %d fallback calls", out, err, calls)
	}
	// Missing files are named with the fix.
	if _, err := o.Decrypt(strings.Repeat("B", 40), der); err == nil || !strings.Contains(err.Error(), ".crt") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParsePublic(f *testing.F) {
	f.Add([]byte(`{"imds":` + imdsItem + `}`))
	f.Add([]byte(`{"wireServer":{"defaultAccess":"deny","rules":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParsePublic(data)
	})
}

// TestReadmeExamples keeps the README's two settings examples valid.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "### Settings")
	if !ok {
		t.Fatal("README has no settings section")
	}
	section, _, _ = strings.Cut(section, "### Exit codes")
	blocks := strings.Split(section, "```json\n")[1:]
	if len(blocks) != 2 {
		t.Fatalf("README has %d settings examples; want 2", len(blocks))
	}
	for i, b := range blocks {
		doc, _, _ := strings.Cut(b, "```")
		if _, err := ParsePublic([]byte(doc)); err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
	}
}

type refuseDecrypter struct{}

func (refuseDecrypter) Decrypt(string, []byte) ([]byte, error) { return nil, errors.New("no") }

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"logLevel":"info"},"protectedSettings":"AAAA","protectedSettingsCertThumbprint":"` + strings.Repeat("A", 40) + `"}}]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, refuseDecrypter{})
		if err == nil && s.HasProtected {
			t.Fatal("protected settings accepted without decryption")
		}
	})
}
