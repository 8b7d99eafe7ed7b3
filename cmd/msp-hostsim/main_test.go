package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/control"
	"github.com/mspguest/msp/hostsim/guest"
)

// buildBinary builds msp-hostsim into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "msp-hostsim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary runs the real binary on loopback port-0 addresses, latches a
// key with a Go guest using agent/sign, sends signed and unsigned requests
// to every endpoint in every mode and checks /verifications and the
// --verify-log file.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	verifyLog := filepath.Join(t.TempDir(), "verify.jsonl")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--imds-addr", "127.0.0.169:0", "--wireserver-addr", "127.0.0.168:0",
		"--hostga-addr", "127.0.0.168:0", "--control-addr", "127.0.0.1:0", "--verify-log", verifyLog)
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("msp-hostsim stderr:\n%s", stderr.String())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address line: %v", err)
	}
	var addrs hostsim.Addrs
	if err := json.Unmarshal([]byte(line), &addrs); err != nil {
		t.Fatalf("address line %q: %v", line, err)
	}
	for _, a := range []string{addrs.IMDS, addrs.WireServer, addrs.HostGA, addrs.Control} {
		if !hostsim.IsLoopback(a) {
			t.Fatalf("bound %s: not loopback", a)
		}
	}
	ctx := context.Background()
	ctl := control.New(addrs.Control, nil)

	// Key acquisition and attestation.
	g := &guest.Guest{IsRoot: true}
	k, err := g.Latch(addrs.WireServer)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ctl.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.KeyGUID == nil || *st.KeyGUID != k.GUID {
		t.Fatalf("control keyGuid %v; want %s", st.KeyGUID, k.GUID)
	}
	ks, _, err := g.Status(addrs.WireServer)
	if err != nil || ks.KeyGUID == nil || *ks.KeyGUID != k.GUID {
		t.Fatalf("status keyGuid: %v %v; want %s", ks, err, k.GUID)
	}

	probes := []struct {
		ep     string
		addr   string
		target string
	}{
		{"imds", addrs.IMDS, "/metadata/instance?api-version=2021-02-01"},
		{"wireserver", addrs.WireServer, "/machine/?comp=goalstate"},
		{"hostga", addrs.HostGA, "/vmSettings"},
	}
	unsigned := &guest.Guest{IsRoot: true}
	before, err := ctl.Verifications(ctx, 0)
	if err != nil || len(before) != 3 {
		t.Fatalf("records of key, attestation and status: %d %v; want 3", len(before), err)
	}
	if before[1].Class != "attestation" || !before[1].Valid || before[1].KeyGUID != k.GUID {
		t.Errorf("attestation record %+v", before[1])
	}
	seen := before[2].Seq
	for _, mode := range []hostproto.Mode{hostproto.ModeDisabled, hostproto.ModeAudit, hostproto.ModeEnforce} {
		if _, err := ctl.SetState(ctx, hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: &mode, WireServer: &mode, HostGAPlugin: &mode}}); err != nil {
			t.Fatal(err)
		}
		type want struct {
			ep     string
			signed bool
			status int
			reason string
		}
		var wants []want
		for _, p := range probes {
			for _, who := range []*guest.Guest{g, unsigned} {
				resp, err := who.Do(p.addr, who.Request("GET", p.target, "host", nil, rawhttp.Header{Name: "Metadata", Value: "true"}))
				if err != nil {
					t.Fatal(err)
				}
				w := want{ep: p.ep, signed: who.Signer != nil, status: 200}
				if !w.signed {
					w.reason = hostsim.ReasonUnsigned
					if mode == hostproto.ModeEnforce {
						w.status = 401
					}
				}
				if resp.Status != w.status {
					t.Errorf("%s %s signed=%v: status %d; want %d", mode, p.ep, w.signed, resp.Status, w.status)
				}
				wants = append(wants, w)
			}
		}
		recs, err := ctl.Verifications(ctx, seen)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(wants) {
			t.Fatalf("%s: %d records; want %d", mode, len(recs), len(wants))
		}
		for i, r := range recs {
			w := wants[i]
			if r.Endpoint != w.ep || r.Mode != mode.String() || r.Signed != w.signed || r.Reason != w.reason || r.Status != w.status || (w.signed && r.KeyGUID != k.GUID) {
				t.Errorf("%s record %d: %+v; want %+v", mode, i, r, w)
			}
			if r.RawTarget == "" || len(r.Headers) == 0 || r.BodySHA256 == "" || r.IsRoot == nil || !*r.IsRoot {
				t.Errorf("%s record %d lacks request details: %+v", mode, i, r)
			}
		}
		seen = recs[len(recs)-1].Seq
	}

	// Bad control input comes back as a 400 naming the field.
	bad := "enforcing"
	_, err = ctl.SetState(ctx, hostsim.Patch{Version: &bad})
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, `version "enforcing"`) {
		t.Errorf("bad version: %v; want a 400 naming version", err)
	}
	// A fault through the client.
	if _, err := ctl.SetFault(ctx, hostsim.Fault{Endpoint: "hostga", Kind: hostsim.FaultHTTP500, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := g.Do(addrs.HostGA, g.Request("GET", "/health", "h", nil)); resp == nil || resp.Status != 500 {
		t.Errorf("injected http500: %v", resp)
	}
	all, err := ctl.Verifications(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := ctl.State(ctx); st == nil || st.KeyGUID != nil {
		t.Errorf("after reset keyGuid %v; want null", st)
	}

	// SIGTERM: clean exit, and the verify log holds every record.
	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	exited = true
	if werr != nil {
		t.Errorf("exit after SIGTERM: %v; want 0", werr)
	}
	data, err := os.ReadFile(verifyLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != len(all) {
		t.Errorf("verify log has %d lines; want %d (one per record)", n, len(all))
	}
	if strings.Contains(stderr.String(), strings.ToLower(k.Key)) || strings.Contains(stderr.String(), k.Key) {
		t.Error("the log contains key material")
	}
}

func TestBinaryRefusesNonLoopback(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--imds-addr", "169.254.169.254:80"}, `--imds-addr "169.254.169.254:80": not a loopback address`},
		{[]string{"--wireserver-addr", "0.0.0.0:80"}, `--wireserver-addr "0.0.0.0:80": not a loopback address`},
		{[]string{"--control-addr", "10.1.2.3:8089"}, `--control-addr "10.1.2.3:8089": not a loopback address`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, tt.args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v; want status 2", err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q; want %q", out, tt.want)
			}
		})
	}
}
