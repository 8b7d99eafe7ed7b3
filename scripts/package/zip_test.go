package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// handlerManifestPath is the repository's generated manifest once it exists
// (make manifest), else a copy in testdata of the same shape.
func handlerManifestPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "manifest", "HandlerManifest.json")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Logf("%s not generated yet; using testdata/HandlerManifest.json", p)
	return filepath.Join("testdata", "HandlerManifest.json")
}

// testZipConfig builds a zip config over stand-in binaries that log to log.
func testZipConfig(t *testing.T, log string) zipConfig {
	t.Helper()
	root := repoRoot(t)
	id, err := readIdentity(filepath.Join(root, "extension.json"))
	if err != nil {
		t.Fatal(err)
	}
	arches := []string{"amd64", "arm64"}
	return zipConfig{
		ID:              id,
		BinDir:          standinBins(t, log, arches, zipBinaries),
		Arches:          arches,
		HandlerManifest: handlerManifestPath(t),
		Unit:            filepath.Join(root, "agent", "unitfile", "msp-agent.service"),
		Config:          filepath.Join("testdata", "config.json"),
		SchemaDirs:      []string{filepath.Join(root, "agent", "authz", "rulefile", "schema")},
		OutDir:          t.TempDir(),
		Epoch:           testEpoch,
	}
}

// extract unpacks a zip into dir with the modes it records, as unzip does.
func extract(t *testing.T, zipPath, dir string) *zip.ReadCloser {
	return extractWith(t, zipPath, dir, true)
}

// extractWith unpacks a zip into dir, with the recorded modes or, like
// Python's zipfile (waagent), with 0644 everywhere.
func extractWith(t *testing.T, zipPath, dir string, keepModes bool) *zip.ReadCloser {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zr.Close() })
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if keepModes {
			mode = f.Mode().Perm()
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	return zr
}

func TestZipLayout(t *testing.T) {
	c := testZipConfig(t, filepath.Join(t.TempDir(), "calls"))
	path, err := writeZip(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(path), c.ID.Publisher+"."+c.ID.Type+"-"+c.ID.Version+".zip"; got != want {
		t.Errorf("zip name %q; want <publisher>.<type>-<version>.zip = %q", got, want)
	}
	zr := extract(t, path, t.TempDir())
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if !f.Modified.Equal(testEpoch) {
			t.Errorf("%s: mtime %v; want SOURCE_DATE_EPOCH %v", f.Name, f.Modified, testEpoch)
		}
		wantMode := os.FileMode(0o644)
		if strings.HasPrefix(f.Name, "bin/") {
			wantMode = 0o755
		}
		if f.Mode() != wantMode {
			t.Errorf("%s: mode %v; want %v", f.Name, f.Mode(), wantMode)
		}
	}
	want := []string{
		"HandlerManifest.json",
		"bin/amd64/msp-agent", "bin/amd64/msp-handler", "bin/amd64/mspctl",
		"bin/arm64/msp-agent", "bin/arm64/msp-handler", "bin/arm64/mspctl",
		"bin/msp-handler",
		"payload/config.json",
		"payload/msp-agent.service",
		"payload/schema/authorization-item.schema.json",
		"payload/schema/local-rules.schema.json",
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("zip entries (in order)\n got %q\nwant %q", names, want)
	}
	sum, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	if got, want := string(sum), hex.EncodeToString(digest[:])+"  "+filepath.Base(path)+"\n"; got != want {
		t.Errorf(".sha256 = %q; want %q", got, want)
	}
}

// fakeUname puts a `uname` that prints machine first on PATH.
func fakeUname(t *testing.T, machine string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\nif [ \"$1\" = -m ]; then echo '" + machine + "'; else exec /bin/uname \"$@\"; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "uname"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// manifestCommands returns the *Command values of HandlerManifest.json.
func manifestCommands(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m []struct {
		HandlerManifest map[string]any `json:"handlerManifest"`
	}
	if err := json.Unmarshal(data, &m); err != nil || len(m) != 1 {
		t.Fatalf("%s: want a one-element array: %v", path, err)
	}
	cmds := map[string]string{}
	for k, v := range m[0].HandlerManifest {
		if s, ok := v.(string); ok && strings.HasSuffix(k, "Command") {
			cmds[k] = s
		}
	}
	if len(cmds) < 5 {
		t.Fatalf("%s: only %d commands: %v", path, len(cmds), cmds)
	}
	return cmds
}

// Every manifest command runs, as waagent runs it (/bin/sh -c from the
// handler root), the handler binary of the machine's architecture.
func TestZipManifestCommandsResolveThroughShim(t *testing.T) {
	log := filepath.Join(t.TempDir(), "calls")
	c := testZipConfig(t, log)
	path, err := writeZip(c)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	extract(t, path, root)
	// Python's zipfile drops the modes; waagent then sets u+x itself. The
	// shim makes its target executable if only it was.
	lost := t.TempDir()
	extractWith(t, path, lost, false)
	if err := os.Chmod(filepath.Join(lost, "bin", "msp-handler"), 0o744); err != nil {
		t.Fatal(err)
	}
	cmds := manifestCommands(t, filepath.Join(root, "HandlerManifest.json"))
	for _, tc := range []struct{ machine, arch, root string }{
		{"x86_64", "amd64", root}, {"amd64", "amd64", root}, {"aarch64", "arm64", root}, {"arm64", "arm64", root},
		{"x86_64", "amd64", lost}, {"aarch64", "arm64", lost},
	} {
		name := tc.machine
		if tc.root == lost {
			name += "/modes-lost"
		}
		t.Run(name, func(t *testing.T) {
			for key, cmdline := range cmds {
				os.Remove(log)
				verb := strings.TrimPrefix(cmdline, "bin/msp-handler ")
				if verb == cmdline {
					t.Fatalf("%s = %q; want bin/msp-handler <verb>", key, cmdline)
				}
				cmd := exec.Command("/bin/sh", "-c", cmdline)
				cmd.Dir = tc.root
				cmd.Env = append(os.Environ(), "PATH="+fakeUname(t, tc.machine))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s %q: %v\n%s", key, cmdline, err, out)
				}
				got := readLines(t, log)
				if want := []string{tc.arch + " msp-handler " + verb}; !reflect.DeepEqual(got, want) {
					t.Errorf("%s on %s: stand-in saw %q; want %q", key, tc.machine, got, want)
				}
			}
		})
	}
}

func TestShimRefusesUnknownArchitecture(t *testing.T) {
	log := filepath.Join(t.TempDir(), "calls")
	path, err := writeZip(testZipConfig(t, log))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	extract(t, path, root)
	for _, machine := range []string{"riscv64", "i686", "armv7l", "ppc64le"} {
		cmd := exec.Command("/bin/sh", "-c", "bin/msp-handler enable")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PATH="+fakeUname(t, machine))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 6 {
			t.Errorf("%s: err %v; want exit status 6", machine, err)
		}
		if want := "unsupported machine architecture '" + machine + "'"; !strings.Contains(stderr.String(), want) {
			t.Errorf("%s: stderr %q; want it to contain %q", machine, stderr.String(), want)
		}
		if calls := readLines(t, log); calls != nil {
			t.Errorf("%s: a handler binary ran: %q", machine, calls)
		}
	}
}

func TestShimPassesShellcheck(t *testing.T) {
	sc := requireTool(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(sc, "-s", "sh", "shim.sh", "debian/postinst", "debian/prerm", "debian/postrm").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

func TestZipIsReproducible(t *testing.T) {
	c := testZipConfig(t, filepath.Join(t.TempDir(), "calls"))
	first, err := writeZip(c)
	if err != nil {
		t.Fatal(err)
	}
	c.OutDir = t.TempDir()
	second, err := writeZip(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", ".sha256"} {
		a, _ := os.ReadFile(first + suffix)
		b, _ := os.ReadFile(second + suffix)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("zip%s differs between two builds (%d and %d bytes)", suffix, len(a), len(b))
		}
	}
}

func TestZipInputErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		name   string
		change func(*zipConfig)
		want   string
	}{
		{"missing binary", func(c *zipConfig) { c.Arches = append(c.Arches, "riscv64") }, "-bins"},
		{"missing handler manifest", func(c *zipConfig) { c.HandlerManifest = "nope.json" }, "make manifest"},
		{"missing unit", func(c *zipConfig) { c.Unit = "nope.service" }, "-unit"},
		{"empty schema dir", func(c *zipConfig) { c.SchemaDirs = []string{t.TempDir()} }, "no *.json"},
		{"clashing schemas", func(c *zipConfig) { c.SchemaDirs = append(c.SchemaDirs, c.SchemaDirs[0]) }, "rename one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testZipConfig(t, filepath.Join(t.TempDir(), "calls"))
			tc.change(&c)
			_, err := writeZip(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

// The build flags leave no build id, path or VCS stamp: two builds of the
// same package are byte-identical.
func TestBuildIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program twice")
	}
	pkgs := map[string]string{"standin": "./scripts/package/testdata/standin"}
	var bins [][]byte
	var dir0 string
	for range 2 {
		dir := t.TempDir()
		if dir0 == "" {
			dir0 = dir
		}
		if err := buildBinaries(context.Background(), repoRoot(t), dir, []string{"arm64"}, pkgs); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(binaryPath(dir, "arm64", "standin"))
		if err != nil {
			t.Fatal(err)
		}
		bins = append(bins, data)
	}
	if !bytes.Equal(bins[0], bins[1]) {
		t.Error("two builds of the same package differ")
	}
	if bytes.Contains(bins[0], []byte(repoRoot(t))) {
		t.Errorf("binary contains the local path %s; want -trimpath", repoRoot(t))
	}
	out, err := exec.Command("go", "tool", "buildid", binaryPath(dir0, "arm64", "standin")).Output()
	if err != nil {
		t.Fatalf("go tool buildid: %v", err)
	}
	if id := strings.TrimSpace(string(out)); id != "" {
		t.Errorf("binary carries build id %q; want none (-buildid=)", id)
	}
}
