package henv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const envJSON = `[{"name":"P.T","version":1.0,"handlerEnvironment":{"logFolder":"/l","configFolder":"/c","statusFolder":"/s","heartbeatFile":"/h","eventsFolder_preview":"/e"}}]`

func TestFindRootAndLoad(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, FileName), []byte(envJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		exe  string
	}{
		{"binary in bin/", nil, filepath.Join(root, "bin", "msp-handler")},
		{"binary in root", nil, filepath.Join(root, "msp-handler")},
		{"variable", map[string]string{"AZURE_GUEST_AGENT_EXTENSION_PATH": root}, "/nowhere/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindRoot(envFunc(tc.env), tc.exe)
			if err != nil || got != root {
				t.Fatalf("got %q, %v; want %q", got, err, root)
			}
		})
	}
	if _, err := FindRoot(envFunc(nil), "/nowhere/bin/x"); err == nil || !strings.Contains(err.Error(), "AZURE_GUEST_AGENT_EXTENSION_PATH") {
		t.Fatalf("got %v; want the fix named", err)
	}
	env, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Env{Root: root, Name: "P.T", LogFolder: "/l", ConfigFolder: "/c", StatusFolder: "/s", HeartbeatFile: "/h", EventsFolder: "/e"}
	if env != want {
		t.Fatalf("got %+v; want %+v", env, want)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"two entries", `[{},{}]`, "array of one object"},
		{"missing statusFolder", `[{"handlerEnvironment":{"logFolder":"/l","configFolder":"/c","heartbeatFile":"/h"}}]`, "statusFolder is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.WriteFile(filepath.Join(root, FileName), []byte(tc.doc), 0o644)
			if _, err := load(root, filepath.Join(root, FileName)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want %q", err, tc.want)
			}
		})
	}
}

func TestSequenceNumber(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, f := range []struct {
		name string
		mt   time.Time
	}{{"7.settings", old}, {"2.settings", time.Now()}, {"9.status", time.Now().Add(time.Hour)}, {"x.settings", time.Now().Add(time.Hour)}} {
		p := filepath.Join(dir, f.name)
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, f.mt, f.mt)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		dir     string
		want    int
		wantErr bool
	}{
		{"variable wins", map[string]string{"ConfigSequenceNumber": "5"}, dir, 5, false},
		{"newest file, not highest", nil, dir, 2, false},
		{"no folder", nil, filepath.Join(dir, "none"), 0, false},
		{"bad variable", map[string]string{"ConfigSequenceNumber": "x"}, dir, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SequenceNumber(envFunc(tc.env), tc.dir)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	root := t.TempDir()
	if m := ReadMarker(root); m.Seq != -1 || m.Done(0, "") {
		t.Fatalf("fresh marker %+v", m)
	}
	if err := WriteMarker(root, 3, "abc"); err != nil {
		t.Fatal(err)
	}
	m := ReadMarker(root)
	if !m.Done(3, "abc") || m.Done(3, "abd") || m.Done(4, "abc") {
		t.Fatalf("marker %+v", m)
	}
	// waagent migrates a bare mrseq, possibly with a newline.
	os.WriteFile(filepath.Join(root, "mrseq"), []byte("3\n"), 0o600)
	if ReadMarker(root).Seq != 3 {
		t.Fatal("trailing newline not accepted")
	}
	if err := ClearMarker(root); err != nil || ReadMarker(root).Seq != -1 {
		t.Fatalf("clear: %v", err)
	}
}
