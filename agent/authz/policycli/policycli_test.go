package policycli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/authz/targettest"
)

// run calls Main and returns its exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const ex = "../../../examples/"

// TestExplainExamples runs `policy explain` on the shipped examples
// (issue 4: "mspctl policy explain works on the examples").
func TestExplainExamples(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output []string // lines that must appear, in order
	}{
		{"imds: anyone reads instance metadata",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/instance?api-version=2021-02-01", "--uid", "1000", "--user", "alice", "--exe", "/usr/bin/curl"},
			0, []string{"allow", "reason: default-allow"}},
		{"imds: alice may not get a token",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", "--uid", "1000", "--user", "alice", "--exe", "/usr/bin/curl"},
			3, []string{"deny", "reason: privilege-identity-mismatch", "privilege: managedIdentity"}},
		{"imds: root may not get a token either",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/identity/oauth2/token?resource=x", "--uid", "0", "--user", "root"},
			3, []string{"deny", "reason: privilege-identity-mismatch"}},
		{"imds: the service account gets its token",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F", "--uid", "998", "--user", "svc-backup", "--groups", "svc-backup", "--exe", "/opt/backup/bin/backup"},
			0, []string{"allow", "reason: privilege-granted", "privilege: managedIdentity", "role: tokenReader", "identity: backupService"}},
		{"imds: the identityX sibling is not the identity path",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/identityX", "--uid", "1000", "--user", "alice"},
			0, []string{"allow", "reason: default-allow"}},
		{"imds: %2F does not hide the token path",
			[]string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata%2Fidentity/oauth2/token", "--uid", "1000", "--user", "alice"},
			3, []string{"deny", "reason: privilege-identity-mismatch"}},
		{"wireserver: the guest agent",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--url", "/machine/?comp=goalstate", "--uid", "0", "--user", "root", "--groups", "root", "--exe", "/usr/bin/python3.11"},
			0, []string{"allow", "reason: privilege-granted", "identity: waagent"}},
		{"wireserver: root curl is refused",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--url", "/machine/?comp=certificates", "--uid", "0", "--user", "root", "--exe", "/usr/bin/curl"},
			3, []string{"deny", "reason: privilege-identity-mismatch", "privilege: everything"}},
		{"wireserver: non-root refused before rules",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--url", "/machine/?comp=goalstate", "--uid", "1000", "--user", "alice", "--exe", "/usr/bin/python3.11"},
			3, []string{"deny", "reason: root-required"}},
		{"hostga follows the wireserver rules",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "hostga", "--url", "/status", "--uid", "0", "--user", "root", "--exe", "/usr/bin/python3.11"},
			0, []string{"allow", "reason: privilege-granted"}},
		{"wireserver: root telemetry is exempt",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--method", "POST", "--url", "/machine/?comp=telemetrydata", "--uid", "0", "--user", "root", "--exe", "/usr/bin/curl"},
			0, []string{"allow", "reason: exempt"}},
		{"audit: would deny, forwarded",
			[]string{"--rules", ex + "imds-readers-audit.json", "--endpoint", "imds", "--url", "/metadata/instance?api-version=2021-02-01", "--uid", "1000", "--user", "alice", "--groups", "alice,users"},
			0, []string{"audit", "reason: privilege-identity-mismatch", "privilege: instance", "explanation: audit mode: would deny, forwarded"}},
		{"audit: group member",
			[]string{"--rules", ex + "imds-readers-audit.json", "--endpoint", "imds", "--url", "/metadata/scheduledevents%3Fapi-version=2019-08-01", "--uid", "1001", "--user", "bob", "--groups", "bob, metadata-readers"},
			0, []string{"allow", "privilege: scheduledEvents", "identity: metadataReaders"}},
		{"audit: ambiguous query",
			[]string{"--rules", ex + "imds-readers-audit.json", "--endpoint", "imds", "--url", "/metadata/instance?api-version=2021-02-01&api-version=2017-01-01", "--uid", "1001", "--user", "bob", "--groups", "metadata-readers"},
			0, []string{"audit", "reason: ambiguous-query"}},
		{"process name is the base name of --exe",
			[]string{"--rules", "-", "--endpoint", "imds", "--url", "/metadata/instance", "--uid", "5", "--exe", "/opt/app/bin/agent"},
			0, []string{"allow", "identity: byName"}},
		{"wireserver: real uid 0 with effective uid 1000 is not root",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--url", "/machine/?comp=goalstate", "--uid", "0", "--euid", "1000", "--user", "root", "--groups", "root", "--exe", "/usr/bin/python3.11"},
			3, []string{"deny", "reason: root-required", "explanation: WireServer and HostGAPlugin serve only root (real and effective uid 0)"}},
		{"wireserver: effective uid 0 with real uid 1000 is not root",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--url", "/machine/?comp=goalstate", "--uid", "1000", "--euid", "0", "--user", "alice", "--exe", "/usr/bin/python3.11"},
			3, []string{"deny", "reason: root-required"}},
		{"wireserver: telemetry is not exempt for uid 0 euid 1000",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "wireserver", "--method", "POST", "--url", "/machine/?comp=telemetrydata", "--uid", "0", "--euid", "1000", "--user", "root"},
			3, []string{"deny", "reason: root-required"}},
		{"hostga: vmAgentLog is not exempt for uid 1000 euid 0",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "hostga", "--method", "PUT", "--url", "/vmAgentLog", "--uid", "1000", "--euid", "0", "--user", "alice"},
			3, []string{"deny", "reason: root-required"}},
		{"hostga: vmAgentLog from root is exempt",
			[]string{"--rules", ex + "wireserver-guest-agent.json", "--endpoint", "hostga", "--method", "PUT", "--url", "/vmAgentLog", "--uid", "0", "--euid", "0", "--user", "root"},
			0, []string{"allow", "reason: exempt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdin := `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/metadata"}],"roles":[{"name":"r","privileges":["p"]}],"identities":[{"name":"byName","processName":"agent"}],"roleAssignments":[{"role":"r","identities":["byName"]}]}}`
			code, out, errs := run(t, stdin, append([]string{"explain"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			rest := out
			for _, want := range tc.output {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", want, out)
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	code, out, _ := run(t, "", "explain", "--json", "--rules", ex+"imds-managed-identity.json", "--endpoint", "imds",
		"--url", "/metadata/identity/oauth2/token?resource=x", "--uid", "1000", "--user", "alice")
	if code != ExitDenied {
		t.Errorf("exit %d; want %d", code, ExitDenied)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, out)
	}
	for k, v := range map[string]string{"decision": "deny", "reason": "privilege-identity-mismatch", "privilege": "managedIdentity", "endpoint": "imds", "mode": "enforce"} {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	code, out, _ = run(t, "", "explain", "--json", "--rules", ex+"imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/versions", "--uid", "0")
	if code != ExitOK || !strings.Contains(out, `"decision": "allow"`) || !strings.Contains(out, `"reason": "default-allow"`) {
		t.Errorf("exit %d, output %s", code, out)
	}
}

func TestExplainBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAccess":"deny","mode":"enforcing"}`), 0o600)
	base := []string{"--endpoint", "imds", "--url", "/x", "--uid", "0"}
	for _, tc := range []struct {
		name string
		args []string
		want string // in stdout or stderr
	}{
		{"no rules", base, "--rules: missing"},
		{"missing file", append([]string{"--rules", filepath.Join(dir, "none.json")}, base...), "no such file"},
		{"invalid file", append([]string{"--rules", bad}, base...), `mode: "enforcing": want disabled, audit or enforce`},
		{"bad endpoint", []string{"--rules", bad, "--endpoint", "metadata", "--url", "/x", "--uid", "0"}, `--endpoint "metadata": want imds, wireserver or hostga`},
		{"no uid", []string{"--rules", bad, "--endpoint", "imds", "--url", "/x"}, `--uid "": want a number`},
		{"negative uid", []string{"--rules", bad, "--endpoint", "imds", "--url", "/x", "--uid", "-1"}, `--uid "-1"`},
		{"no url", []string{"--rules", bad, "--endpoint", "imds", "--uid", "0"}, "--url: missing"},
		{"bad euid", []string{"--rules", bad, "--endpoint", "imds", "--url", "/x", "--uid", "0", "--euid", "root"}, `--euid "root": want a number`},
		{"path rejected", []string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", "/metadata/./identity", "--uid", "0"},
			`--url: the proxy refuses this request-target: 403 path-rejected: request-target "/metadata/./identity": path rejected: decoded path contains a "." segment`},
		{"raw byte", []string{"--rules", ex + "imds-managed-identity.json", "--endpoint", "imds", "--url", `/metadata\identity`, "--uid", "0"},
			`--url: the proxy refuses this request-target: 400 bad-request-line: request-target: byte 0x5c ('\\') at offset 9 is not an RFC 3986 path or query character (percent-encode data)`},
		{"stray argument", append([]string{"--rules", bad, "extra"}, base...), "unexpected arguments"},
		{"unknown flag", append([]string{"--rule", bad}, base...), "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, "", append([]string{"explain"}, tc.args...)...)
			if code != ExitBad || !strings.Contains(out+errs, tc.want) {
				t.Errorf("exit %d; want %d with %q\nstdout:\n%s\nstderr:\n%s", code, ExitBad, tc.want, out, errs)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string // exact stdout
	}{
		{"example", []string{ex + "imds-readers-audit.json"}, "", 0, ex + "imds-readers-audit.json: ok (4 privileges)\n"},
		{"local example", []string{"--local", ex + "local/IMDS_Rules.json"}, "", 0, ex + "local/IMDS_Rules.json: ok (1 privilege)\n"},
		{"local file is not an item", []string{ex + "local/IMDS_Rules.json"}, "", 2, "defaultAccess: missing: want \"allow\" or \"deny\"\n"},
		{"one line per problem", []string{"-"}, `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a"},{"name":"b","pathh":"/b"}],"roles":[{"name":"r","privileges":["x"]}]}}`, 2,
			"rules.privileges[1].pathh: unknown field: want one of name, path, queryParameters\n" +
				"rules.privileges[1].path: \"\": missing or empty: want an absolute path such as /metadata/instance\n" +
				"rules.roles[0].privileges[0]: no privilege named \"x\"\n"},
		{"duplicate key", []string{"-"}, `{"defaultAccess":"deny","defaultAccess":"allow"}`, 2, "defaultAccess: duplicate key: each key may appear once per object\n"},
		{"not JSON", []string{"-"}, `defaultAccess=deny`, 2, "$: invalid JSON: invalid character 'd' looking for beginning of value\n"},
		{"bom", []string{"-"}, "\xef\xbb\xbf{\"defaultAccess\":\"deny\"}", 0, "-: ok (0 privileges)\n"},
		{"no file", nil, "", 2, ""},
		{"two files", []string{"a", "b"}, "", 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, tc.stdin, append([]string{"validate"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Errorf("exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s", code, out, tc.code, tc.out, errs)
			}
		})
	}
}

func TestValidateLocalHasNoWarnings(t *testing.T) {
	code, _, errs := run(t, "", "validate", "--local", ex+"local/IMDS_Rules.json")
	if code != ExitOK || errs != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, errs)
	}
}

func TestValidateWarns(t *testing.T) {
	code, _, errs := run(t, `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a"}]}}`, "validate", "-")
	if code != ExitOK || !strings.Contains(errs, "warning: rules: some of privileges, roles, identities and roleAssignments are missing") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"frobnicate"}, 2}, {[]string{"help"}, 0}} {
		code, out, errs := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errs, "usage:") {
			t.Errorf("Main(%q) = %d, output %q; want %d with usage", tc.args, code, out+errs, tc.code)
		}
	}
}

// TestExplainStrictTarget: explain refuses (exit 2, one line naming the
// problem) every spelling the proxy refuses before authorization, denies
// (exit 3) the others for alice with the shipped managed-identity policy,
// and explains the targets of real clients.
func TestExplainStrictTarget(t *testing.T) {
	for _, sp := range targettest.Spellings() {
		t.Run(sp.Note, func(t *testing.T) {
			code, out, errs := run(t, "", "explain", "--rules", ex+"imds-managed-identity.json", "--endpoint", "imds",
				"--url", sp.Target, "--uid", "1000", "--user", "alice", "--exe", "/usr/bin/curl")
			if !sp.Refused {
				if code != ExitDenied || !strings.Contains(out, "privilege: managedIdentity") {
					t.Errorf("exit %d; want %d by managedIdentity\n%s%s", code, ExitDenied, out, errs)
				}
				return
			}
			want := "403 path-rejected: "
			if sp.Raw {
				want = "400 bad-request-line: "
			}
			if code != ExitBad || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "--url: the proxy refuses this request-target: "+want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and one line with %q", code, out, errs, ExitBad, want)
			}
		})
	}
	for _, l := range targettest.Legitimates() {
		t.Run(l.Source+" "+l.Target, func(t *testing.T) {
			code, out, errs := run(t, `{"defaultAccess":"allow"}`, "explain", "--rules", "-", "--endpoint", l.Endpoint.String(),
				"--method", l.Method, "--url", l.Target, "--uid", "0", "--user", "root")
			if code != ExitOK {
				t.Errorf("exit %d\n%s%s", code, out, errs)
			}
		})
	}
}
