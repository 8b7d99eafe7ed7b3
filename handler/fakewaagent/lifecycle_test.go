package fakewaagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mspguest/msp/handler/internal/testbin"
)

func item(mode, access string, paths ...string) map[string]any {
	it := map[string]any{"defaultAccess": access}
	if mode != "" {
		it["mode"] = mode
	}
	if len(paths) > 0 {
		var privs []any
		var names []string
		for i, p := range paths {
			name := "p" + string(rune('a'+i))
			privs = append(privs, map[string]any{"name": name, "path": p})
			names = append(names, name)
		}
		it["rules"] = map[string]any{
			"privileges":      privs,
			"roles":           []any{map[string]any{"name": "r", "privileges": names}},
			"identities":      []any{map[string]any{"name": "root", "userName": "root"}},
			"roleAssignments": []any{map[string]any{"role": "r", "identities": []string{"root"}}},
		}
	}
	return it
}

func assertNoSecret(t *testing.T, dir, secret string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), secret) {
				t.Errorf("%s contains the protected settings", p)
			}
		}
		return nil
	})
}

// TestUnsupportedOS: an unsupported distribution gets the
// CheckOSVersionSupport error status and exit 6, and nothing installed.
func TestUnsupportedOS(t *testing.T) {
	wd := newWorld(t)
	os.MkdirAll(wd.path("etc"), 0o755)
	os.WriteFile(wd.path("etc/os-release"), []byte("ID=arch\nPRETTY_NAME=\"Arch Linux\"\n"), 0o644)
	s, err := wd.w.FirstInstall(buildPackage(t, "1.0.0", testbin.Agent), 0, map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].ExitCode != 6 {
		t.Fatalf("got %v; want install to exit 6", s)
	}
	st := wd.status("1.0.0", 0)
	if st.Operation != "CheckOSVersionSupport" || st.Status != "error" || !strings.Contains(st.Message, "Arch Linux") {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(wd.path("usr/sbin/msp-agent")); !os.IsNotExist(err) {
		t.Fatal("the agent was installed on an unsupported OS")
	}
}

// TestAgentNotReady: an agent that finishes provisioning with an error
// fails enable with an actionable error status and exit 7.
func TestAgentNotReady(t *testing.T) {
	wd := newWorld(t)
	os.MkdirAll(wd.path("var/lib/msp-agent"), 0o700)
	os.WriteFile(wd.path("var/lib/msp-agent/fake-fail"), []byte("ebpfProgramStatus - kernel lacks bpf_link"), 0o600)
	s, err := wd.w.FirstInstall(buildPackage(t, "1.0.0", testbin.FakeAgent), 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[1].ExitCode != 7 {
		t.Fatalf("got %v; want enable to exit 7", s)
	}
	st := wd.status("1.0.0", 0)
	if st.Status != "error" || st.Code != 7 || !strings.Contains(st.Message, "kernel lacks bpf_link") {
		t.Fatalf("status %+v", st)
	}
}

// TestSmimeFallback: when `openssl cms` fails, the foundation's `openssl
// smime` path decrypts the protected settings.
func TestSmimeFallback(t *testing.T) {
	wd := newWorld(t)
	real, err := execLookPath("openssl")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	script := "#!/bin/sh\necho \"$1\" >> " + calls + "\n[ \"$1\" = cms ] && exit 3\nexec " + real + " \"$@\"\n"
	os.WriteFile(filepath.Join(bin, "openssl"), []byte(script), 0o755)
	pkg := buildPackage(t, "1.0.0", testbin.Agent)
	// The certificate and the encryption use the real openssl.
	if err := wd.w.Deploy(pkg); err != nil {
		t.Fatal(err)
	}
	if err := wd.w.WriteSettings("1.0.0", 0, map[string]any{}, map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	wd.w.Env = append(wd.w.Env, "PATH="+bin+":"+os.Getenv("PATH"))
	for _, verb := range []string{"install", "enable"} {
		if r, err := wd.w.Run("1.0.0", verb, 0, nil); err != nil || r.ExitCode != 0 {
			t.Fatalf("%v, %v", r, err)
		}
	}
	used, _ := os.ReadFile(calls)
	if !strings.Contains(string(used), "cms") || !strings.Contains(string(used), "smime") {
		t.Fatalf("openssl calls %q; want cms then smime", used)
	}
}
