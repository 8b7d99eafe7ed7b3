package audit

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/identity"
)

func sampleEntry() Entry {
	return Entry{
		Time: time.Date(2026, 12, 7, 16, 35, 36, 120000000, time.FixedZone("CET", 3600)),
		ID:   "c0ffee-1", Endpoint: "imds", Method: "GET",
		Target:   "/metadata/identity/oauth2/token?resource=https://management.azure.com/",
		Decision: DecisionAuditDeny, Reason: "no-rule", Privilege: "token", Role: "reader", Identity: "svc",
		Status: 200, LatencyUs: 812, Signed: true,
		Caller: Caller{UID: 1000, GID: 1000, PID: 4242, User: "alice", Groups: []string{"alice", "adm"},
			Exe: "/usr/bin/curl", Process: "curl", CmdLine: "curl -H Metadata:true http://169.254.169.254/x", Root: false},
		Client: netip.MustParseAddrPort("127.0.0.1:40000"),
		Dest:   netip.MustParseAddrPort("169.254.169.254:80"),
	}
}

// jsonKeys returns the json keys of a struct type, "-" excluded.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// objectKeys returns the keys of a JSON object in order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestLineKeysAreEntrysAndRoundTrip(t *testing.T) {
	e := sampleEntry()
	line := appendLine(nil, &e)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	if got, want := objectKeys(t, line), jsonKeys(reflect.TypeFor[Entry]()); !slices.Equal(got, want) {
		t.Errorf("line keys %v; want Entry's %v", got, want)
	}
	var top map[string]json.RawMessage
	must(t, json.Unmarshal(line, &top))
	if got, want := objectKeys(t, top["caller"]), jsonKeys(reflect.TypeFor[Caller]()); !slices.Equal(got, want) {
		t.Errorf("caller keys %v; want Caller's %v", got, want)
	}
	if got := string(top["time"]); got != `"2026-12-07T15:35:36.120000000Z"` {
		t.Errorf("time = %s; want UTC RFC 3339 with nine fraction digits", got)
	}
	var back Entry
	must(t, json.Unmarshal(line, &back))
	want := e
	want.Client, want.Dest = netip.AddrPort{}, netip.AddrPort{}
	if !back.Time.Equal(want.Time) {
		t.Errorf("time %v; want %v", back.Time, want.Time)
	}
	back.Time = want.Time
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, want)
	}
}

func TestLineStrings(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"Plain", "/metadata/instance?a=b&c=d", `"/metadata/instance?a=b&c=d"`},
		{"QuoteBackslash", `a"b\c`, `"a\"b\\c"`},
		{"Controls", "a\nb\rc\td\x00e\x1f", `"a\nb\rc\td\u0000e\u001f"`},
		{"UTF8Kept", "größe→✓", `"größe→✓"`},
		{"InvalidUTF8", "a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"HTMLNotEscaped", "<a&b>", `"<a&b>"`},
	}
	for _, tt := range tests {
		got := string(appendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("%s: appendString(%q) = %s; want %s", tt.name, tt.in, got, tt.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s: %s is not JSON: %v", tt.name, got, err)
		}
	}
}

func TestLineEmptyGroupsIsArray(t *testing.T) {
	e := Entry{Time: time.Unix(0, 0)}
	if line := appendLine(nil, &e); !bytes.Contains(line, []byte(`"groups":[]`)) {
		t.Errorf("line %s; want \"groups\":[]", line)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"\\\x00\xff→")
	f.Fuzz(func(t *testing.T, s string) {
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil {
			t.Fatalf("appendString(%q) is not JSON: %v", s, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		must(t, json.Unmarshal(ref, &want))
		if back != want {
			t.Fatalf("appendString(%q) decodes to %q; encoding/json gives %q", s, back, want)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLineRedactsSecretsInTarget(t *testing.T) {
	e := sampleEntry()
	e.Target = "/upload?sv=2020&sig=c2VjcmV0%3D&se=1"
	line := appendLine(nil, &e)
	if !bytes.Contains(line, []byte(`"target":"/upload?sv=2020&sig=[REDACTED]&se=1"`)) {
		t.Errorf("line %s; want the sig value redacted and the rest kept", line)
	}
}

func TestCallerOf(t *testing.T) {
	c := identity.Caller{UID: 7, GID: 8, PID: 9, Comm: "c", Root: true, UserName: "u", Groups: []string{"g"},
		ExePath: "/bin/x", ProcessName: "x", CmdLine: "x -y"}
	want := Caller{UID: 7, GID: 8, PID: 9, User: "u", Groups: []string{"g"}, Exe: "/bin/x", Process: "x", CmdLine: "x -y", Root: true}
	if got := CallerOf(&c); !reflect.DeepEqual(got, want) {
		t.Errorf("CallerOf = %+v; want %+v", got, want)
	}
}
