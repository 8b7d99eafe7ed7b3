// Command gen writes manifest/HandlerManifest.json from extension.json.
// Run it from the repository root: `make manifest`.
package main

import (
	"fmt"
	"os"

	"github.com/mspguest/msp/manifest"
)

func main() {
	if err := run("extension.json", "manifest/HandlerManifest.json"); err != nil {
		fmt.Fprintln(os.Stderr, "manifest:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	ext, err := manifest.Parse(data)
	if err != nil {
		return err
	}
	m, err := manifest.HandlerManifest(ext)
	if err != nil {
		return err
	}
	return os.WriteFile(out, m, 0o644)
}
