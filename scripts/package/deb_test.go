package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// testDebConfig builds a .deb config over a stand-in agent that logs to log.
func testDebConfig(t *testing.T, log string) debConfig {
	t.Helper()
	root := repoRoot(t)
	id, err := readIdentity(filepath.Join(root, "extension.json"))
	if err != nil {
		t.Fatal(err)
	}
	bins := standinBins(t, log, []string{"amd64"}, []string{"msp-agent"})
	return debConfig{
		Version:     id.Version,
		Arch:        "amd64",
		Agent:       binaryPath(bins, "amd64", "msp-agent"),
		Unit:        filepath.Join(root, "agent", "unitfile", "msp-agent.service"),
		Maintainer:  "Test <test@example.invalid>",
		Description: id.Description,
		OutDir:      t.TempDir(),
		Epoch:       testEpoch,
	}
}

func TestDebContents(t *testing.T) {
	dpkgDeb := requireTool(t, "dpkg-deb", "dpkg")
	c := testDebConfig(t, filepath.Join(t.TempDir(), "calls"))
	path, err := writeDeb(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(path), "msp-agent_"+c.Version+"_amd64.deb"; got != want {
		t.Errorf("deb name %q; want %q", got, want)
	}
	fields, err := exec.Command(dpkgDeb, "--showformat=${Package}|${Version}|${Architecture}|${Section}\n", "--show", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --show: %v\n%s", err, fields)
	}
	if got, want := string(fields), "msp-agent|"+c.Version+"|amd64|admin\n"; got != want {
		t.Errorf("control fields %q; want %q", got, want)
	}
	list, err := exec.Command(dpkgDeb, "--contents", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, list)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(line) // mode owner size date time path
		got = append(got, f[0]+" "+f[1]+" "+f[len(f)-1])
	}
	want := []string{
		"drwxr-xr-x root/root ./",
		"drwxr-xr-x root/root ./usr/",
		"drwxr-xr-x root/root ./usr/lib/",
		"drwxr-xr-x root/root ./usr/lib/systemd/",
		"drwxr-xr-x root/root ./usr/lib/systemd/system/",
		"-rw-r--r-- root/root ./usr/lib/systemd/system/msp-agent.service",
		"drwxr-xr-x root/root ./usr/sbin/",
		"-rwxr-xr-x root/root ./usr/sbin/msp-agent",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("data members\n got %q\nwant %q (no config.json)", got, want)
	}
	ctrl := t.TempDir()
	if out, err := exec.Command(dpkgDeb, "--control", path, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --control: %v\n%s", err, out)
	}
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(ctrl, name))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v; want mode 0755", name, err)
		}
	}
}

func TestDebIsReproducible(t *testing.T) {
	c := testDebConfig(t, filepath.Join(t.TempDir(), "calls"))
	first, err := writeDeb(c)
	if err != nil {
		t.Fatal(err)
	}
	c.OutDir = t.TempDir()
	second, err := writeDeb(c)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two builds differ (%d and %d bytes)", len(a), len(b))
	}
}

// wantsLink is what `systemctl enable msp-agent.service` creates.
const wantsLink = "/etc/systemd/system/multi-user.target.wants/msp-agent.service"

// bpffsNames lists everything under /sys/fs/bpf, to compare before and after.
func bpffsNames(t *testing.T) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir("/sys/fs/bpf", func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// prepareDpkgTest checks that this test may install the package on this
// machine (root, dpkg, systemd not PID 1, no agent already there) and
// removes whatever the test leaves when it ends.
func prepareDpkgTest(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; this test installs a package with dpkg")
		}
		t.Skip("needs root: installs a package with dpkg")
	}
	requireTool(t, "dpkg", "dpkg")
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd is PID 1 here: dpkg -i would start the stand-in agent; this test checks the no-systemd path")
	}
	requireCleanSystem(t)
	t.Cleanup(func() { forgetPackage(t) })
}

// requireCleanSystem stops a test that would overwrite an agent this
// machine really has: the package or its files.
func requireCleanSystem(t *testing.T) {
	t.Helper()
	if dpkgKnows() {
		t.Fatalf("a %s package is already known to dpkg; remove it first (dpkg --purge %s)", debPackage, debPackage)
	}
	for _, p := range []string{"/" + debAgent, "/" + debUnit} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists outside any package; this test would overwrite it", p)
		}
	}
}

// purgeWouldDelete lists the directories the postrm's purge deletes that
// exist before the test: then the test must not run that purge.
func purgeWouldDelete() []string {
	var found []string
	for _, p := range []string{"/var/lib/msp-agent", "/etc/msp-agent"} {
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	return found
}

// dpkgKnows reports whether dpkg has any record of the msp-agent package.
func dpkgKnows() bool {
	return exec.Command("dpkg-query", "-W", debPackage).Run() == nil
}

// forgetPackage removes msp-agent from dpkg and the system whatever state a
// failed test left it in: a prerm that fails is replaced first.
func forgetPackage(t *testing.T) {
	if !dpkgKnows() {
		return
	}
	t.Logf("cleaning up a left-over %s package", debPackage)
	for _, s := range []string{"prerm", "postrm"} {
		p := "/var/lib/dpkg/info/" + debPackage + "." + s
		if _, err := os.Stat(p); err == nil {
			_ = os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755)
		}
	}
	if out, err := exec.Command("dpkg", "--purge", "--force-all", debPackage).CombinedOutput(); err != nil {
		t.Errorf("cleanup: dpkg --purge --force-all %s: %v\n%s", debPackage, err, out)
	}
	for _, p := range []string{"/" + debAgent, "/" + debUnit, wantsLink} {
		_ = os.Remove(p)
	}
}

// The package installs on a machine where systemd is not PID 1 without
// starting the agent, and its removal runs `msp-agent --cleanup` and leaves
// nothing behind.
func TestDebInstallAndRemove(t *testing.T) {
	prepareDpkgTest(t)

	log := filepath.Join(t.TempDir(), "calls")
	c := testDebConfig(t, log)
	deb, err := writeDeb(c)
	if err != nil {
		t.Fatal(err)
	}
	pinsBefore := bpffsNames(t)

	out, err := exec.Command("dpkg", "-i", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("not started")) {
		t.Errorf("dpkg -i output does not say the agent was not started:\n%s", out)
	}
	if fi, err := os.Stat("/" + debAgent); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("/%s after install: %v; want an executable", debAgent, err)
	}
	if _, err := os.Stat("/" + debUnit); err != nil {
		t.Errorf("/%s after install: %v", debUnit, err)
	}
	if _, err := exec.LookPath("systemctl"); err == nil {
		if _, err := os.Lstat(wantsLink); err != nil {
			t.Errorf("unit not enabled after install: %v", err)
		}
	}
	if _, err := os.Stat("/etc/msp-agent/config.json"); err == nil {
		t.Error("/etc/msp-agent/config.json exists after install; the package ships none")
	}
	if calls := readLines(t, log); calls != nil {
		t.Errorf("the agent ran during install: %q", calls)
	}
	if after := bpffsNames(t); !reflect.DeepEqual(after, pinsBefore) {
		t.Errorf("bpffs changed during install:\nbefore %q\n after %q", pinsBefore, after)
	}

	if out, err := exec.Command("dpkg", "-r", debPackage).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, out)
	}
	if got, want := readLines(t, log), []string{"amd64 msp-agent --cleanup"}; !reflect.DeepEqual(got, want) {
		t.Errorf("agent invocations %q; want only %q", got, want)
	}
	for _, p := range []string{"/" + debAgent, "/" + debUnit, wantsLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists after dpkg -r", p)
		}
	}
	if existing := purgeWouldDelete(); existing != nil {
		// Something else on this machine owns them: purge without the
		// postrm's rm -rf.
		t.Logf("%q exist; purging without running the package's postrm", existing)
		forgetPackage(t)
	} else if out, err := exec.Command("dpkg", "--purge", debPackage).CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if dpkgKnows() {
		t.Errorf("dpkg still knows %s after --purge", debPackage)
	}
	if leftovers, _ := filepath.Glob("/var/lib/dpkg/info/" + debPackage + ".*"); leftovers != nil {
		t.Errorf("dpkg state left behind: %q", leftovers)
	}
}

// A failing `msp-agent --cleanup` fails the removal and keeps the binary, so
// the cleanup can be run again; nothing else is lost.
func TestDebRemovalStopsWhenCleanupFails(t *testing.T) {
	prepareDpkgTest(t)
	c := testDebConfig(t, filepath.Join(t.TempDir(), "calls"))
	failing := filepath.Join(t.TempDir(), "msp-agent")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\n[ \"$1\" = --cleanup ] && exit 3\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Agent = failing
	deb, err := writeDeb(c)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	out, err := exec.Command("dpkg", "-r", debPackage).CombinedOutput()
	if err == nil {
		t.Fatalf("dpkg -r succeeded although --cleanup failed:\n%s", out)
	}
	if !bytes.Contains(out, []byte("'msp-agent --cleanup' failed")) {
		t.Errorf("dpkg -r output does not name the failed cleanup:\n%s", out)
	}
	if _, err := os.Stat("/" + debAgent); err != nil {
		t.Errorf("/%s is gone after a failed removal: %v", debAgent, err)
	}
}
