package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEpoch is the SOURCE_DATE_EPOCH the tests build with.
var testEpoch = time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)

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

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// standinBins writes, for every architecture and binary, a shell script that
// appends "<arch> <name> <args>" to log, in the layout build produces.
func standinBins(t *testing.T, log string, arches []string, names []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, arch := range arches {
		for _, name := range names {
			script := "#!/bin/sh\necho \"" + arch + " " + name + " $*\" >> '" + log + "'\n"
			p := binaryPath(dir, arch, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// readLines returns the lines of a file, nil when it does not exist.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
