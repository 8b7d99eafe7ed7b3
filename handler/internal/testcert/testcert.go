// Package testcert makes a tenant certificate the way waagent leaves one
// (<dir>/<THUMBPRINT>.crt and .prv, PEM with "Bag Attributes" preambles)
// and encrypts protected settings to it as CRP does (CMS EnvelopedData,
// DER, base64), using the openssl binary. For tests and the fake waagent.
package testcert

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Cert is a certificate installed in a waagent Lib.Dir.
type Cert struct {
	Dir        string
	Thumbprint string // SHA-1, upper-case hex
}

// New generates an RSA certificate in dir.
func New(dir string) (Cert, error) {
	tmp, err := os.MkdirTemp(dir, "cert")
	if err != nil {
		return Cert{}, err
	}
	defer os.RemoveAll(tmp)
	crt, key := filepath.Join(tmp, "c.pem"), filepath.Join(tmp, "k.pem")
	if err := openssl(nil, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
		"-subj", "/DC=Windows Azure CRP Certificate Generator", "-keyout", key, "-out", crt); err != nil {
		return Cert{}, err
	}
	crtPEM, err := os.ReadFile(crt)
	if err != nil {
		return Cert{}, err
	}
	block, _ := pem.Decode(crtPEM)
	if block == nil {
		return Cert{}, fmt.Errorf("openssl wrote no certificate")
	}
	sum := sha1.Sum(block.Bytes)
	c := Cert{Dir: dir, Thumbprint: strings.ToUpper(hex.EncodeToString(sum[:]))}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		return Cert{}, err
	}
	preamble := "Bag Attributes\n    localKeyID: 01 00 00 00\n    friendlyName: TenantEncryptionCert\n"
	if err := os.WriteFile(c.CrtPath(), append([]byte(preamble+"subject=/DC=Windows Azure CRP Certificate Generator\n"), crtPEM...), 0o600); err != nil {
		return Cert{}, err
	}
	if err := os.WriteFile(c.PrvPath(), append([]byte(preamble+"Key Attributes: <No Attributes>\n"), keyPEM...), 0o600); err != nil {
		return Cert{}, err
	}
	return c, nil
}

// CrtPath and PrvPath are where waagent keeps the certificate and key.
func (c Cert) CrtPath() string { return filepath.Join(c.Dir, c.Thumbprint+".crt") }
func (c Cert) PrvPath() string { return filepath.Join(c.Dir, c.Thumbprint+".prv") }

// Encrypt returns base64 of the DER CMS EnvelopedData of plaintext for the
// certificate, with 3DES content encryption like waagent's sample data.
func (c Cert) Encrypt(plaintext []byte) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("openssl", "cms", "-encrypt", "-outform", "DER", "-des3", c.CrtPath())
	cmd.Stdin = bytes.NewReader(plaintext)
	cmd.Stdout = &out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("openssl cms -encrypt: %v: %s", err, stderr.String())
	}
	return base64.StdEncoding.EncodeToString(out.Bytes()), nil
}

func openssl(stdin []byte, args ...string) error {
	cmd := exec.Command("openssl", args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("openssl %s: %v: %s", args[0], err, out)
	}
	return nil
}
