package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// goBuildFlags make a binary depend only on its sources and the Go version:
// no local paths, no build id, no VCS stamp (a dirty worktree would change it).
var goBuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid="}

// buildBinaries compiles every package in pkgs (name → import path or
// ./relative directory) for linux/<arch> into outDir/linux_<arch>/<name>.
// dir is the module root the packages are resolved from.
func buildBinaries(ctx context.Context, dir, outDir string, arches []string, pkgs map[string]string) error {
	for _, arch := range arches {
		for _, name := range sortedKeys(pkgs) {
			out, err := filepath.Abs(filepath.Join(outDir, "linux_"+arch, name))
			if err != nil {
				return err
			}
			args := append([]string{"build"}, goBuildFlags...)
			args = append(args, "-o", out, pkgs[name])
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build %s for linux/%s from %s: %w", name, arch, pkgs[name], err)
			}
		}
	}
	return nil
}

// binaryPath is where build leaves a binary and where zip and deb look for it.
func binaryPath(binDir, arch, name string) string {
	return filepath.Join(binDir, "linux_"+arch, name)
}
