package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
)

func TestDefaults(t *testing.T) {
	for _, doc := range []string{`{}`, "\xef\xbb\xbf{ }\n", `{"endpoints":{},"limits":{},"settings":{}}`} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		d := Default()
		c.Hash = d.Hash
		if *c != *d {
			t.Errorf("%q: %+v; want the defaults %+v", doc, c, d)
		}
	}
	d := Default()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"listen", d.Listen, netip.MustParseAddrPort("127.0.0.1:3080")},
		{"stateDir", d.StateDir, "/var/lib/msp-agent"},
		{"keys", d.KeysDir(), "/var/lib/msp-agent/keys"},
		{"rules", d.RulesDir(), "/var/lib/msp-agent/rules"},
		{"logDir", d.LogDir, "/var/log/msp-agent"},
		{"logLevel", d.LogLevel, logrus.InfoLevel},
		{"imds", d.Endpoints.Of(hostproto.IMDS), netip.MustParseAddrPort("169.254.169.254:80")},
		{"wireServer", d.Endpoints.Of(hostproto.WireServer), netip.MustParseAddrPort("168.63.129.16:80")},
		{"hostGAPlugin", d.Endpoints.Of(hostproto.HostGAPlugin), netip.MustParseAddrPort("168.63.129.16:32526")},
		{"cgroup", d.Cgroup, ""},
		{"bpffsDir", d.BPFFSDir, "/sys/fs/bpf/msp-agent"},
		{"poll", d.PollInterval, 15 * time.Second},
		{"netns", d.NetnsPolicy, NetnsPass},
		{"limits", d.Limits, Limits{10 * time.Second, 30 * time.Second, 60 * time.Second, 5 * time.Second, 60 * time.Second, 60 * time.Second, 1024, 64}},
		{"settings", d.Settings, Settings{}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
		}
	}
}

const fullConfig = `{
  "listen": "127.0.0.2:4080",
  "stateDir": "/tmp/msp/state/",
  "logDir": "/tmp/msp/log",
  "logLevel": "debug",
  "endpoints": {"imds": "127.0.0.169:80", "wireServer": "127.0.0.168:80", "hostGAPlugin": "127.0.0.168:32526"},
  "cgroup": "/sys/fs/cgroup/test",
  "bpffsDir": "/sys/fs/bpf/msp-test",
  "pollIntervalSeconds": 2,
  "netnsPolicy": "deny",
  "limits": {"headerReadSeconds": 1, "bodyReadSeconds": 2, "idleSeconds": 3, "dialSeconds": 4, "responseHeaderSeconds": 5, "bodyIdleSeconds": 6, "maxConnections": 10, "maxConnectionsPerUid": 10},
  "settings": {
    "imds": {"defaultAccess": "allow", "id": "s1"},
    "wireServer": {"defaultAccess": "deny", "mode": "enforce", "rules": {"privileges": [{"name": "all", "path": "/"}], "roles": [{"name": "r", "privileges": ["all"]}], "identities": [{"name": "root", "userName": "root"}], "roleAssignments": [{"role": "r", "identities": ["root"]}]}}
  }
}`

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen: netip.MustParseAddrPort("127.0.0.2:4080"), StateDir: "/tmp/msp/state", LogDir: "/tmp/msp/log", LogLevel: logrus.DebugLevel,
		Endpoints: Endpoints{netip.MustParseAddrPort("127.0.0.169:80"), netip.MustParseAddrPort("127.0.0.168:80"), netip.MustParseAddrPort("127.0.0.168:32526")},
		Cgroup:    "/sys/fs/cgroup/test", BPFFSDir: "/sys/fs/bpf/msp-test", PollInterval: 2 * time.Second, NetnsPolicy: NetnsDeny,
		Limits: Limits{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second, 10, 10},
	}
	got := *c
	got.Settings, got.Hash = Settings{}, [32]byte{}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// A settings item without mode keeps "no mode" (it follows the host).
	if s := c.Settings.Item(hostproto.IMDS); s == nil || s.Mode != "" || s.ID != "s1" {
		t.Errorf("settings.imds %+v; want no mode", s)
	}
	if s := c.Settings.Item(hostproto.HostGAPlugin); s != c.Settings.WireServer || s.Mode != "enforce" || !s.Rules.Complete() {
		t.Errorf("HostGAPlugin settings %+v; want wireServer's", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"listn": "127.0.0.1:3080"}`, "config: listn: unknown field: want one of listen, stateDir, logDir, logLevel, endpoints, cgroup, bpffsDir, pollIntervalSeconds, netnsPolicy, limits, settings"},
		{`{"listen": "0.0.0.0:3080"}`, `config: listen: "0.0.0.0:3080": not a loopback address: the listener binds loopback only, use 127.0.0.1:PORT`},
		{`{"listen": "localhost:3080"}`, `config: listen: "localhost:3080": want IP:PORT such as 127.0.0.1:3080`},
		{`{"listen": 3080}`, "config: listen: want a string, got a number"},
		{`{"stateDir": "var/lib"}`, `config: stateDir: "var/lib": want an absolute path such as /var/lib/msp-agent`},
		{`{"logDir": null}`, "config: logDir: want a string, got null (remove the field to take the default)"},
		{`{"logLevel": "verbose"}`, `config: logLevel: "verbose": want error, warn, info, debug or trace`},
		{`{"endpoints": {"imds": "169.254.169.254"}}`, `config: endpoints.imds: "169.254.169.254": want IP:PORT such as 169.254.169.254:80`},
		{`{"endpoints": {"hostga": "1.2.3.4:5"}}`, "config: endpoints.hostga: unknown field: want one of imds, wireServer, hostGAPlugin"},
		{`{"endpoints": []}`, "config: endpoints: want an object, got an array"},
		{`{"pollIntervalSeconds": 0}`, "config: pollIntervalSeconds: 0: want a whole number 1-3600"},
		{`{"pollIntervalSeconds": 1.5}`, "config: pollIntervalSeconds: 1.5: want a whole number 1-3600"},
		{`{"pollIntervalSeconds": "15"}`, "config: pollIntervalSeconds: want a whole number 1-3600, got a string"},
		{`{"netnsPolicy": "drop"}`, `config: netnsPolicy: "drop": want pass or deny`},
		{`{"limits": {"dialSeconds": -1}}`, "config: limits.dialSeconds: -1: want a whole number 1-300"},
		{`{"limits": {"maxConnections": 10, "maxConnectionsPerUid": 64}}`, "config: limits.maxConnectionsPerUid: 64 is more than limits.maxConnections 10: lower it or raise maxConnections"},
		{`{"limits": {"maxConnectionsPerUID": 1}}`, "config: limits.maxConnectionsPerUID: unknown field"},
		{`{"settings": {"hostGAPlugin": {}}}`, "config: settings.hostGAPlugin: unknown field: want one of imds, wireServer"},
		{`{"settings": {"imds": {"defaultAccess": "allow", "mode": "enforcing"}}}`, `config: settings.imds.mode: "enforcing": want disabled, audit or enforce`},
		{`{"settings": {"imds": {"mode": "audit"}}}`, `config: settings.imds.defaultAccess: missing: want "allow" or "deny"`},
		{`{"settings": {"wireServer": {"defaultAccess": "deny", "rules": {"roles": [{"name": "r", "privileges": ["x"]}], "identities": [{"name": "i"}]}}}}`,
			`config: settings.wireServer.rules.roles[0].privileges[0]: no privilege named "x" (and 1 more problem(s): run mspctl policy validate on the item)`},
		{`{"settings": {"imds": []}}`, "config: settings.imds: want an object, got array"},
		{`{"logLevel": "info", "logLevel": "debug"}`, "config: logLevel: duplicate key: keep one"},
		{`{} {}`, "config: $: trailing data after the JSON object"},
		{`{"limits": {"idleSeconds": 1,}}`, "config: limits: invalid JSON near byte"},
		{`{"limits": {`, "config: limits: invalid JSON"},
		{`[]`, "config: $: want an object, got an array"},
		{``, "config: $: empty file"},
		{"{\"x\": \"\xff\"}", "config: $: not valid UTF-8"},
	} {
		_, err := Parse([]byte(tc.doc))
		var ce *Error
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.doc, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tc.doc, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "config.json")
	// A missing default file means the defaults.
	_, c, err := load("", def)
	if err != nil || c.Path != "" || c.Listen != Default().Listen {
		t.Fatalf("missing default file: %+v, %v", c, err)
	}
	// A missing explicit file is an error.
	if _, err := Load(filepath.Join(dir, "other.json")); err == nil || !strings.Contains(err.Error(), "other.json") {
		t.Errorf("missing explicit file: %v", err)
	}
	os.WriteFile(def, []byte(`{"pollIntervalSeconds": 3}`), 0o644)
	if _, c, err = load("", def); err != nil || c.PollInterval != 3*time.Second || c.Path != def {
		t.Errorf("default file: %+v, %v", c, err)
	}
	os.WriteFile(def, []byte(`{"pollIntervalSeconds": 0}`), 0o644)
	if _, err := Load(def); err == nil || err.Error() != "config "+def+": pollIntervalSeconds: 0: want a whole number 1-3600" {
		t.Errorf("bad file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{fullConfig, `{}`, `{"limits":{"maxConnections":1}}`, `{"settings":{"imds":{"defaultAccess":"allow"}}}`, `{"a":`, `[`, `{"listen":"[::1]:80"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Path == "" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not a one-line *Error with a path", err)
			}
			return
		}
		if !c.Listen.Addr().Unmap().IsLoopback() || c.PollInterval < time.Second || c.Limits.MaxConnectionsPerUID > c.Limits.MaxConnections ||
			!filepath.IsAbs(c.StateDir) || (c.NetnsPolicy != NetnsPass && c.NetnsPolicy != NetnsDeny) {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
	})
}
