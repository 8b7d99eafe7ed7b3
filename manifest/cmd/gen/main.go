// Command gen writes manifest/HandlerManifest.json and manifest/manifest.xml
// from extension.json.
// Run it from the repository root: `make manifest`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mspguest/msp/manifest"
)

func main() {
	if err := run("extension.json", "manifest"); err != nil {
		fmt.Fprintln(os.Stderr, "manifest:", err)
		os.Exit(1)
	}
}

func run(in, dir string) error {
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
	x, err := manifest.ExtensionImageXML(ext)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "HandlerManifest.json"), m, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.xml"), x, 0o644)
}
