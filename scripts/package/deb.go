package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"embed"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// maintainerScripts are the .deb's postinst, prerm and postrm.
//
//go:embed debian
var maintainerScripts embed.FS

const (
	debPackage = "msp-agent"
	debAgent   = "usr/sbin/msp-agent"
	debUnit    = "usr/lib/systemd/system/msp-agent.service"
)

// debConfig names the inputs of one .deb.
type debConfig struct {
	Version     string
	Arch        string // Go and Debian agree on amd64 and arm64
	Agent       string // the msp-agent binary for Arch
	Unit        string // msp-agent.service
	Maintainer  string
	Description string // one line
	OutDir      string
	Epoch       time.Time
}

// debName is dist's file name for the package.
func (c debConfig) debName() string {
	return fmt.Sprintf("%s_%s_%s.deb", debPackage, c.Version, c.Arch)
}

// writeDeb writes <OutDir>/msp-agent_<version>_<arch>.deb and returns its path.
func writeDeb(c debConfig) (string, error) {
	agent, err := fileEntry(debAgent, c.Agent, 0o755)
	if err != nil {
		return "", fmt.Errorf("-bins: %w", err)
	}
	unit, err := fileEntry(debUnit, c.Unit, 0o644)
	if err != nil {
		return "", fmt.Errorf("-unit: %w", err)
	}
	files := []entry{agent, unit}
	data, err := tarGz(files, c.Epoch, true)
	if err != nil {
		return "", err
	}
	control, err := debControl(c, files)
	if err != nil {
		return "", err
	}
	var deb bytes.Buffer
	deb.WriteString("!<arch>\n")
	for _, m := range []entry{
		{name: "debian-binary", data: []byte("2.0\n")},
		{name: "control.tar.gz", data: control},
		{name: "data.tar.gz", data: data},
	} {
		// ar member header: name/16 mtime/12 uid/6 gid/6 mode/8 size/10 "`\n".
		fmt.Fprintf(&deb, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, c.Epoch.Unix(), 0, 0, 0o100644, len(m.data))
		deb.Write(m.data)
		if len(m.data)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	path := filepath.Join(c.OutDir, c.debName())
	if err := writeWithSum(path, deb.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// debControl builds control.tar.gz: control, md5sums and the maintainer scripts.
func debControl(c debConfig, files []entry) ([]byte, error) {
	size := 0
	var sums strings.Builder
	for _, f := range files {
		size += len(f.data)
		sum := md5.Sum(f.data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), f.name)
	}
	desc := strings.TrimSpace(c.Description)
	if desc == "" || strings.Contains(desc, "\n") {
		return nil, fmt.Errorf("deb description %q: want one non-empty line", c.Description)
	}
	control := fmt.Sprintf(`Package: %s
Version: %s
Architecture: %s
Maintainer: %s
Installed-Size: %d
Section: admin
Priority: optional
Description: Metadata Security Protocol signing proxy agent
 %s
 .
 The package installs the agent and its systemd unit, enables the unit and
 starts it only when systemd runs. It ships no configuration: the agent's
 defaults apply until the VM extension or an operator writes
 /etc/msp-agent/config.json.
`, debPackage, c.Version, c.Arch, c.Maintainer, (size+1023)/1024, desc)
	es := []entry{
		{name: "control", data: []byte(control), mode: 0o644},
		{name: "md5sums", data: []byte(sums.String()), mode: 0o644},
	}
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		data, err := maintainerScripts.ReadFile("debian/" + name)
		if err != nil {
			return nil, err
		}
		es = append(es, entry{name: name, data: data, mode: 0o755})
	}
	return tarGz(es, c.Epoch, false)
}

// tarGz writes es as a gzip-compressed tar owned by root with fixed mtimes,
// sorted, with "./"-prefixed names. withDirs adds the parent directories.
func tarGz(es []entry, epoch time.Time, withDirs bool) ([]byte, error) {
	sortEntries(es)
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, typ byte, mode int64, size int) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(size), ModTime: epoch,
			Uname: "root", Gname: "root", Format: tar.FormatGNU}
	}
	dirs := map[string]bool{}
	if withDirs {
		if err := tw.WriteHeader(hdr("./", tar.TypeDir, 0o755, 0)); err != nil {
			return nil, err
		}
	}
	for _, e := range es {
		if withDirs {
			parts := strings.Split(e.name, "/")
			for i := 1; i < len(parts); i++ {
				d := strings.Join(parts[:i], "/")
				if dirs[d] {
					continue
				}
				dirs[d] = true
				if err := tw.WriteHeader(hdr("./"+d+"/", tar.TypeDir, 0o755, 0)); err != nil {
					return nil, err
				}
			}
		}
		if err := tw.WriteHeader(hdr("./"+e.name, tar.TypeReg, int64(e.mode.Perm()), len(e.data))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
