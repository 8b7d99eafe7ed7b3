package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// shim is bin/msp-handler in the zip.
//
//go:embed shim.sh
var shim []byte

// zipBinaries are the binaries every architecture directory of the zip holds.
var zipBinaries = []string{"msp-handler", "msp-agent", "mspctl"}

// zipConfig names the inputs of the extension zip.
type zipConfig struct {
	ID              identity
	BinDir          string   // <BinDir>/linux_<arch>/<name>, as build leaves them
	Arches          []string // Go architecture names: amd64, arm64
	HandlerManifest string   // HandlerManifest.json
	ManifestXML     string   // manifest.xml; optional
	Unit            string   // msp-agent.service
	Config          string   // default agent config; optional
	SchemaDirs      []string // every *.json in them goes to payload/schema/
	OutDir          string
	Epoch           time.Time
}

// zipEntries collects the zip's files, sorted by name.
func zipEntries(c zipConfig) ([]entry, error) {
	var es []entry
	add := func(name, src string, mode os.FileMode) error {
		e, err := fileEntry(name, src, mode)
		if err != nil {
			return err
		}
		es = append(es, e)
		return nil
	}
	if err := add("HandlerManifest.json", c.HandlerManifest, 0o644); err != nil {
		return nil, fmt.Errorf("-handler-manifest: %w (run `make manifest`)", err)
	}
	if c.ManifestXML != "" {
		if err := add("manifest.xml", c.ManifestXML, 0o644); err != nil {
			return nil, fmt.Errorf("-manifest-xml: %w", err)
		}
	}
	es = append(es, entry{name: "bin/msp-handler", data: shim, mode: 0o755})
	for _, arch := range c.Arches {
		for _, name := range zipBinaries {
			if err := add("bin/"+arch+"/"+name, binaryPath(c.BinDir, arch, name), 0o755); err != nil {
				return nil, fmt.Errorf("-bins: %w (build it with `go run ./scripts/package build -bins %s`)", err, c.BinDir)
			}
		}
	}
	if err := add("payload/msp-agent.service", c.Unit, 0o644); err != nil {
		return nil, fmt.Errorf("-unit: %w", err)
	}
	if c.Config != "" {
		if err := add("payload/config.json", c.Config, 0o644); err != nil {
			return nil, fmt.Errorf("-config: %w", err)
		}
	}
	seen := map[string]string{}
	for _, dir := range c.SchemaDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			return nil, fmt.Errorf("-schemas %s: %w", dir, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("-schemas %s: no *.json files", dir)
		}
		for _, f := range files {
			base := filepath.Base(f)
			if prev, dup := seen[base]; dup {
				return nil, fmt.Errorf("-schemas: %s and %s both become payload/schema/%s; rename one", prev, f, base)
			}
			seen[base] = f
			if err := add("payload/schema/"+base, f, 0o644); err != nil {
				return nil, err
			}
		}
	}
	sortEntries(es)
	return es, nil
}

// writeZip builds the extension zip in memory, then writes it and its
// .sha256 ("<hex>  <name>", as sha256sum -c reads it) into c.OutDir.
// It returns the zip's path.
func writeZip(c zipConfig) (string, error) {
	es, err := zipEntries(c)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range es {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: c.Epoch}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return "", fmt.Errorf("zip %s: %w", e.name, err)
		}
		if _, err := w.Write(e.data); err != nil {
			return "", fmt.Errorf("zip %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("zip: %w", err)
	}
	name := c.ID.zipName()
	path := filepath.Join(c.OutDir, name)
	if err := writeWithSum(path, buf.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// writeWithSum writes data to path and its SHA-256 to path.sha256.
func writeWithSum(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	line := hex.EncodeToString(sum[:]) + "  " + filepath.Base(path) + "\n"
	return os.WriteFile(path+".sha256", []byte(line), 0o644)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
