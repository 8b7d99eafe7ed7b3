package settings

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	foundation "github.com/Azure/azure-extension-foundation/settings"
)

func base64Decode(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

// OpenSSL decrypts protected settings with the openssl binary, as waagent
// and the Microsoft Go handlers do: `openssl cms -decrypt -inform DER
// -recip <CertDir>/<thumb>.crt -inkey <CertDir>/<thumb>.prv`, and when that
// fails, Fallback (normally FoundationSmime).
type OpenSSL struct {
	// CertDir holds <thumbprint>.crt and .prv: waagent's Lib.Dir, which
	// is configFolder/../.. .
	CertDir string
	// Fallback runs when cms fails; nil means none.
	Fallback Decrypter
	// Timeout bounds each openssl run; zero means 30 s.
	Timeout time.Duration
}

// Decrypt implements Decrypter.
func (o OpenSSL) Decrypt(thumb string, der []byte) ([]byte, error) {
	crt := filepath.Join(o.CertDir, thumb+".crt")
	prv := filepath.Join(o.CertDir, thumb+".prv")
	for _, f := range []string{crt, prv} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("certificate file %s: %w (waagent writes it with the goal state)", f, errors.Unwrap(err))
		}
	}
	out, err := o.run(der, "cms", "-decrypt", "-inform", "DER", "-recip", crt, "-inkey", prv)
	if err == nil {
		return out, nil
	}
	if o.Fallback == nil {
		return nil, err
	}
	out, ferr := o.Fallback.Decrypt(thumb, der)
	if ferr != nil {
		return nil, fmt.Errorf("%v; fallback: %v", err, ferr)
	}
	return out, nil
}

func (o OpenSSL) run(stdin []byte, args ...string) ([]byte, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		clear(stdout.Bytes())
		return nil, fmt.Errorf("openssl %s: %v: %s", args[0], err, firstLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// FoundationSmime is the `openssl smime` fallback through
// azure-extension-foundation's settings.GetExtensionSettings. That function
// re-reads <configFolder>/<Seq>.settings itself, locating
// HandlerEnvironment.json next to os.Args[0] or one directory up, so it
// works only in the installed handler; its errors carry stack traces, so
// only their first line is kept.
type FoundationSmime struct {
	Seq int
	// HandlerRoot is the extension's directory (where waagent puts
	// HandlerEnvironment.json). The package runs bin/<arch>/msp-handler,
	// two levels below it, where the foundation does not look: Decrypt
	// names bin/msp-handler as the program for the call's duration.
	HandlerRoot string
}

// Decrypt implements Decrypter; thumb and der are the ones the foundation
// reads again from the settings file.
func (f FoundationSmime) Decrypt(string, []byte) ([]byte, error) {
	var public, protected map[string]any
	if f.HandlerRoot != "" && len(os.Args) > 0 {
		// The foundation's quirk, wrapped: it finds HandlerEnvironment.json
		// from os.Args[0]. The handler runs one command at a time, on one
		// goroutine, when it decrypts.
		saved := os.Args[0]
		os.Args[0] = filepath.Join(f.HandlerRoot, "bin", "msp-handler")
		defer func() { os.Args[0] = saved }()
	}
	if err := foundation.GetExtensionSettings(f.Seq, &public, &protected); err != nil {
		return nil, fmt.Errorf("openssl smime (azure-extension-foundation): %s", firstLine(err.Error()))
	}
	if protected == nil {
		return nil, errors.New("openssl smime (azure-extension-foundation): no protected settings")
	}
	return json.Marshal(protected)
}
