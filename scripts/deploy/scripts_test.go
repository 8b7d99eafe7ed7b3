package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt from the scripts' --dry-run output")

// requireTool returns the path of a tool the test needs. It is missing
// only on a developer machine, where the test skips; in CI (CI=true) a
// missing tool is a failure, since a skip there would hide a broken check.
func requireTool(t *testing.T, name, aptPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: CI must install it (apt-get install %s, in a scripts/ci.d hook)", name, aptPackage)
	}
	t.Skipf("%s not found; apt-get install %s", name, aptPackage)
	return ""
}

// scripts are the deploy scripts, each of which must support --dry-run.
var scripts = []string{"greenfield.sh", "brownfield-vm.sh", "brownfield-vmss.sh", "fleet-monitor.sh"}

const sub = "00000000-0000-0000-0000-000000000000"

var goldenCases = []struct {
	name string
	args []string
}{
	{"greenfield-vm", []string{"greenfield.sh", "-g", "rg-msp", "-l", "westeurope", "-n", "web1", "--settings", "settings.example.json", "--ssh-key", "testdata/id_test.pub"}},
	{"greenfield-vmss", []string{"greenfield.sh", "-g", "rg-msp", "-l", "westeurope", "-n", "web", "--kind", "vmss", "--instance-count", "5", "--settings", "settings.example.json", "--ssh-key", "testdata/id_test.pub"}},
	{"greenfield-vmss-arm", []string{"greenfield.sh", "-g", "rg-msp", "-l", "westeurope", "-n", "web", "--kind", "vmss", "--template", "arm", "--settings", "settings.example.json", "--ssh-key", "testdata/id_test.pub"}},
	{"greenfield-vm-bicep", []string{"greenfield.sh", "-g", "rg-msp", "-l", "westeurope", "-n", "web1", "--template", "bicep", "--settings", "settings.example.json", "--ssh-key", "testdata/id_test.pub"}},
	{"brownfield-vm-audit", []string{"brownfield-vm.sh", "-g", "rg-app", "-n", "db1", "--settings", "settings.example.json", "audit"}},
	{"brownfield-vm-enforce", []string{"brownfield-vm.sh", "-g", "rg-app", "-n", "db1", "--settings", "settings.example.json", "enforce"}},
	{"brownfield-vm-rollback", []string{"brownfield-vm.sh", "-g", "rg-app", "-n", "db1", "--settings", "settings.example.json", "rollback", "--to-version", "0.0"}},
	{"brownfield-vm-remove", []string{"brownfield-vm.sh", "-g", "rg-app", "-n", "db1", "rollback", "--remove"}},
	{"brownfield-vmss-prepare", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "--batch-percent", "10", "--pause", "PT10M", "--max-unhealthy", "15", "--max-unhealthy-upgraded", "5", "--health-settings", "testdata/health.json", "prepare"}},
	{"brownfield-vmss-audit", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "--settings", "settings.example.json", "audit"}},
	{"brownfield-vmss-enforce", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "--settings", "settings.example.json", "enforce"}},
	{"brownfield-vmss-status", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "status"}},
	{"brownfield-vmss-rollback", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "--settings", "settings.example.json", "rollback"}},
	{"brownfield-vmss-remove", []string{"brownfield-vmss.sh", "-g", "rg-app", "-n", "api", "--remove", "rollback"}},
	{"fleet-monitor-vmss", []string{"fleet-monitor.sh", "--subscription", sub, "-g", "rg-monitor", "--workspace", "fleet-logs", "--vmss", "api", "--target-group", "rg-app"}},
	{"fleet-monitor-vm", []string{"fleet-monitor.sh", "--subscription", sub, "-g", "rg-monitor", "--workspace", "fleet-logs", "--vm", "db1"}},
}

// runScript runs a deploy script under bash with a fake `az` first on PATH.
// The fake records each call in the --dry-run format (lib.sh's run) and
// exits with azExit. It returns the script's output and the recorded calls.
func runScript(t *testing.T, azExit int, env []string, args ...string) (stdout, stderr, calls string, err error) {
	t.Helper()
	requireTool(t, "jq", "jq")
	lib, err := filepath.Abs("lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	log := filepath.Join(fake, "calls")
	script := fmt.Sprintf("#!/usr/bin/env bash\n. '%s'\nDRY_RUN=1 run az \"$@\" >> '%s'\nexit %d\n", lib, log, azExit)
	if err := os.WriteFile(filepath.Join(fake, "az"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", args...)
	cmd.Env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	data, _ := os.ReadFile(log)
	return out.String(), errb.String(), string(data), err
}

// The --dry-run output of every script is compared with a golden file; run
// `go test ./scripts/deploy -run Golden -update` after an intended change.
func TestDryRunGolden(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{tc.args[0], "--dry-run"}, tc.args[1:]...)
			out, stderr, calls, err := runScript(t, 99, nil, args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, stderr)
			}
			if calls != "" {
				t.Errorf("--dry-run called az:\n%s", calls)
			}
			out = strings.ReplaceAll(out, root, "<repo>")
			golden := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("%s differs from %s (run with -update if intended)\n got:\n%s\nwant:\n%s", tc.args[0], golden, out, want)
			}
		})
	}
}

// Without --dry-run the scripts run exactly the commands --dry-run prints.
func TestRunMatchesDryRun(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			dry, stderr, _, err := runScript(t, 0, nil, append([]string{tc.args[0], "--dry-run"}, tc.args[1:]...)...)
			if err != nil {
				t.Fatalf("--dry-run: %v\n%s", err, stderr)
			}
			var want strings.Builder
			for _, line := range strings.SplitAfter(dry, "\n") {
				if !strings.HasPrefix(line, "# ") {
					want.WriteString(line)
				}
			}
			_, stderr, calls, err := runScript(t, 0, nil, tc.args...)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if calls != want.String() {
				t.Errorf("az calls differ from --dry-run\n got:\n%s\nwant:\n%s", calls, want.String())
			}
		})
	}
}

// A failing az command stops the script (set -e), except the rollback's
// cancel, which is allowed to fail when no upgrade runs.
func TestScriptsStopAtTheFirstFailingCommand(t *testing.T) {
	_, _, calls, err := runScript(t, 1, nil, "brownfield-vmss.sh", "-g", "rg", "-n", "ss", "--settings", "settings.example.json", "audit")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("err %v; want az's exit status 1", err)
	}
	if n := strings.Count(calls, "\n"); n != 1 {
		t.Errorf("%d az calls after a failure; want 1:\n%s", n, calls)
	}
	_, _, calls, err = runScript(t, 1, nil, "brownfield-vmss.sh", "-g", "rg", "-n", "ss", "--remove", "rollback")
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("rollback: err %v; want the delete's exit status 1", err)
	}
	if !strings.Contains(calls, "az vmss rolling-upgrade cancel") || !strings.Contains(calls, "az vmss extension delete") {
		t.Errorf("rollback did not go on to the delete after a failed cancel:\n%s", calls)
	}
}

// Every script has a golden --dry-run case.
func TestEveryScriptHasAGolden(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range goldenCases {
		covered[tc.args[0]] = true
	}
	found, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if f != "lib.sh" && !covered[f] {
			t.Errorf("%s has no golden --dry-run case", f)
		}
		if f != "lib.sh" && !contains(scripts, f) {
			t.Errorf("%s is not in the scripts list", f)
		}
	}
}

// Publisher, type and version are read from extension.json, not written
// into the scripts.
func TestScriptsReadTheExtensionIdentity(t *testing.T) {
	ext := filepath.Join(t.TempDir(), "extension.json")
	if err := os.WriteFile(ext, []byte(`{"publisher":"Fabrikam.Test","type":"OtherAgent","version":"7.3.2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, _, err := runScript(t, 99, []string{"MSP_EXTENSION_JSON=" + ext},
		"brownfield-vm.sh", "--dry-run", "-g", "rg", "-n", "vm", "--settings", "settings.example.json", "enforce")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if want := "--publisher Fabrikam.Test --name OtherAgent --version 7.3 "; !strings.Contains(out, want) {
		t.Errorf("output does not use the extension.json given:\n%s\nwant %q", out, want)
	}
}

func TestScriptsRejectBadInput(t *testing.T) {
	notObject := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(notObject, []byte(`["imds"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	badVersion := filepath.Join(t.TempDir(), "extension.json")
	if err := os.WriteFile(badVersion, []byte(`{"publisher":"A","type":"B","version":"one"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no settings", nil, []string{"brownfield-vm.sh", "--dry-run", "-g", "rg", "-n", "vm", "audit"}, "--settings FILE is required"},
		{"settings not an object", nil, []string{"brownfield-vm.sh", "--dry-run", "-g", "rg", "-n", "vm", "--settings", notObject, "audit"}, "not a JSON object"},
		{"no stage", nil, []string{"brownfield-vmss.sh", "--dry-run", "-g", "rg", "-n", "ss"}, "a stage is required"},
		{"bad percentage", nil, []string{"brownfield-vmss.sh", "--dry-run", "-g", "rg", "-n", "ss", "--batch-percent", "120", "prepare"}, "--batch-percent '120'"},
		{"bad pause", nil, []string{"brownfield-vmss.sh", "--dry-run", "-g", "rg", "-n", "ss", "--pause", "5m", "prepare"}, "ISO 8601"},
		{"bad kind", nil, []string{"greenfield.sh", "--dry-run", "-g", "rg", "-l", "x", "-n", "n", "--kind", "aks", "--settings", "settings.example.json"}, "--kind 'aks'"},
		{"missing value", nil, []string{"greenfield.sh", "--dry-run", "-g"}, "-g needs a value"},
		{"unknown flag", nil, []string{"fleet-monitor.sh", "--dry-run", "--vmms", "x"}, "unknown argument '--vmms'"},
		{"bad version", []string{"MSP_EXTENSION_JSON=" + badVersion}, []string{"brownfield-vm.sh", "--dry-run", "-g", "rg", "-n", "vm", "--settings", "settings.example.json", "audit"}, "version 'one'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, calls, err := runScript(t, 0, tc.env, tc.args...)
			if calls != "" {
				t.Errorf("az was called:\n%s", calls)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Errorf("err %v; want exit status 2", err)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q; want it to contain %q", stderr, tc.want)
			}
			if out != "" {
				t.Errorf("printed commands before failing:\n%s", out)
			}
		})
	}
}

// Every script starts with set -euo pipefail, supports --dry-run, is
// executable and passes shellcheck.
func TestScriptsPassShellcheck(t *testing.T) {
	sc := requireTool(t, "shellcheck", "shellcheck")
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "\nset -euo pipefail\n") {
			t.Errorf("%s: no `set -euo pipefail`", s)
		}
		if !strings.Contains(string(data), "--dry-run) DRY_RUN=1") {
			t.Errorf("%s: no --dry-run option", s)
		}
		if fi, err := os.Stat(s); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: not executable", s)
		}
	}
	args := append([]string{"-x", "lib.sh"}, scripts...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %v: %v\n%s", args, err, out)
	}
}
