package attack

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/keykeeper"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/internal/agenttest"
)

// signerFor loads the agent's key file of guid.
func (s *suite) signerFor(t *testing.T, guid string) (*sign.Signer, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.h.Dir, "state", "keys", guid+".key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keykeeper.ReadKeyFile(data, guid)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hostproto.DecodeKeyHex(k.Key)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := sign.NewSigner(k.Key, k.GUID)
	if err != nil {
		t.Fatal(err)
	}
	return sg, raw[:]
}

// fullAuthorization recomputes the authorization header the host
// verified for a recorded bodiless request (the emulator keeps only its
// first 8 hex digits), and checks it against that prefix.
func fullAuthorization(t *testing.T, sg *sign.Signer, r hostsim.Record) (string, []rawhttp.Header) {
	t.Helper()
	var hs []rawhttp.Header
	var shortened string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, hostproto.HeaderAuthorization) {
			shortened = h.Value
			continue
		}
		hs = append(hs, rawhttp.Header{Name: h.Name, Value: h.Value})
	}
	full := sg.Authorization(r.Method, r.RawTarget, hs, nil)
	if prefix := strings.TrimSuffix(shortened, "..."); shortened == "" || !strings.HasPrefix(full, prefix) {
		t.Fatalf("recomputed %q does not extend the recorded %q", full, shortened)
	}
	return full, hs
}

// testReplay: a request the host verified, captured whole and sent again
// straight to the emulator (bypassing the agent), is accepted inside the
// host's date window and rejected outside it.
func testReplay(t *testing.T, s *suite) {
	target := marker("replay")
	if r := s.h.Curl(0, "GET", s.h.URL(hostproto.IMDS, target)); r.Status != 200 {
		t.Fatalf("capture: %+v", r)
	}
	rec := s.h.LastRecord(hostproto.IMDS, target)
	if rec == nil || !rec.Valid || rec.IsRoot == nil || !*rec.IsRoot {
		t.Fatalf("captured record %+v; want valid with isRoot true", rec)
	}
	sg, _ := s.signerFor(t, rec.KeyGUID)
	full, _ := fullAuthorization(t, sg, *rec)
	// The request as the host received it, header for header.
	var b strings.Builder
	b.WriteString(rec.Method + " " + rec.RawTarget + " HTTP/1.1\r\n")
	for _, h := range rec.Headers {
		v := h.Value
		if strings.EqualFold(h.Name, hostproto.HeaderAuthorization) {
			v = full
		}
		b.WriteString(h.Name + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	replay := b.String()
	send := func() (int, hostsim.Record) {
		t.Helper()
		before := s.seq()
		c, err := net.DialTimeout("tcp4", s.imds.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(replay))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		resp.Body.Close()
		recs := s.since(before)
		if len(recs) != 1 {
			t.Fatalf("replay: host records %+v; want one", recs)
		}
		return resp.StatusCode, recs[0]
	}
	state := s.h.Emu.State()
	t.Cleanup(func() {
		s.h.Apply(hostsim.Patch{DateSkewSeconds: &state.DateSkewSeconds, ClockOffsetSeconds: &state.ClockOffsetSeconds})
	})
	skew := 300
	s.h.Apply(hostsim.Patch{DateSkewSeconds: &skew})
	st, r := send()
	t.Logf("replay inside a %d s window: %d, host valid %v isRoot %v", skew, st, r.Valid, *r.IsRoot)
	if st != 200 || !r.Valid {
		t.Errorf("replay inside the window: %d %+v; want accepted (the date window is the protocol's only replay defence)", st, r)
	}
	for _, off := range []int{skew + 1, 3600, -(skew + 1)} {
		s.h.Apply(hostsim.Patch{ClockOffsetSeconds: &off})
		st, r := send()
		t.Logf("replay with the host clock %+d s: %d %s", off, st, r.Reason)
		if st != 401 || r.Valid || r.Reason != hostsim.ReasonDateSkew {
			t.Errorf("replay %+d s outside the window: %d %+v; want 401 %s", off, st, r, hostsim.ReasonDateSkew)
		}
	}
}

// testFilePermissions: the key, state, log and socket files have the
// modes of agent.md, are root's, and nothing under them is open to
// others.
func testFilePermissions(t *testing.T, s *suite) {
	state, logDir := filepath.Join(s.h.Dir, "state"), filepath.Join(s.h.Dir, "log")
	keys := filepath.Join(state, "keys")
	want := map[string]fs.FileMode{
		state:                                  fs.ModeDir | 0o700,
		keys:                                   fs.ModeDir | 0o700,
		filepath.Join(state, "rules"):          fs.ModeDir | 0o700,
		filepath.Join(state, "metrics.sock"):   fs.ModeSocket | 0o600,
		filepath.Join(keys, "provisioned.tag"): 0o600,
		filepath.Join(keys, "status.tag"):      0o600,
		logDir:                                 fs.ModeDir | 0o750,
		filepath.Join(logDir, "audit.jsonl"):   0o640,
		filepath.Join(logDir, "status.json"):   0o640,
	}
	entries, err := os.ReadDir(keys)
	if err != nil {
		t.Fatal(err)
	}
	nkeys := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".key") {
			want[filepath.Join(keys, e.Name())] = 0o600
			nkeys++
		}
	}
	if nkeys == 0 {
		t.Errorf("no key file in %s", keys)
	}
	for path, mode := range want {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		got := fi.Mode() & (fs.ModeType | fs.ModePerm)
		if got != mode || st.Uid != 0 {
			t.Errorf("%s: mode %v uid %d; want %v, root's", path, got, st.Uid, mode)
		}
	}
	// Nothing else in those trees is open to others; under state, not to
	// the group either.
	for _, root := range []string{state, logDir} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			mask := fs.FileMode(0o007)
			if root == state {
				mask = 0o077
			}
			if fi.Mode().Perm()&mask != 0 {
				t.Errorf("%s: mode %v; want no access for %s", path, fi.Mode(), map[bool]string{true: "group or others", false: "others"}[root == state])
			}
			return nil
		})
	}
	// And uid 65534 cannot read the key or talk to the metrics socket.
	for _, path := range []string{filepath.Join(keys, entries[0].Name()), filepath.Join(logDir, "audit.jsonl")} {
		out, err := runAs(nobody, "cat", path)
		if err == nil {
			t.Errorf("uid 65534 read %s: %q", path, out)
		}
	}
}

// testNoSecrets: the key, the full signatures the host verified, and
// secrets a client put in its query, headers and command line appear in
// nothing the agent wrote: its log, audit.jsonl, status.json, the tags,
// the metrics, and its error bodies.
func testNoSecrets(t *testing.T, s *suite) {
	const (
		sas    = "sv=2024-01-01&sig=Zm9yZ2VkU2lnbmF0dXJlU2VjcmV0MTIzNDU2Nzg5MA%3D%3D"
		bearer = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhdHRhY2stc3VpdGUifQ.c2VjcmV0LXNpZ25hdHVyZS1hdHRhY2s"
	)
	secretOfClient := map[string]string{
		"SAS sig":    "Zm9yZ2VkU2lnbmF0dXJlU2VjcmV0MTIzNDU2Nzg5MA",
		"bearer JWT": bearer,
		"client key": "c2VjcmV0LWtleS1hdHRhY2stc3VpdGUtMDEyMzQ1Njc4OWFiY2RlZg==",
		"password":   "hunter2-attack-suite",
	}
	var bodies []string
	for _, c := range []struct {
		uid    int
		target string
	}{
		{nobody, instance + "&" + sas},                 // allowed
		{nobody, token + "&" + sas},                    // denied by the policy
		{nobody, "/metadata/instance/%2e%2e/x?" + sas}, // refused target
		{0, instance + "&" + sas},
	} {
		r := s.h.Curl(c.uid, "GET", s.h.URL(hostproto.IMDS, c.target),
			"-H", "Authorization: Bearer "+bearer,
			"-H", "X-Api-Key: "+secretOfClient["client key"],
			"-u", "user:"+secretOfClient["password"])
		if r.Status <= 0 {
			t.Fatalf("curl %s: %+v", c.target, r)
		}
		bodies = append(bodies, r.Body)
	}
	// Refusals with the secret in the request line and headers, over raw
	// bytes (framing errors echo nothing either).
	// The command line (its first 4 arguments are audited) carries them
	// too.
	args := []string{"-H", "Authorization: Bearer " + bearer, "https://acct.blob.core.windows.net/c/b?" + sas}
	outs := s.raw(t, placement{uid: nobody, args: args},
		ex(s.imds, "GET /metadata/instance?"+sas+" HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+bearer+"\r\nX-A: a\x00\r\n\r\n"),
		ex(s.imds, "GET /metadata\\identity?"+sas+" HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+bearer+"\r\n\r\n"),
		ex(s.wire, get("/machine/?comp=goalstate&"+sas, "Authorization: Bearer "+bearer+"\r\n")))
	for _, o := range outs {
		bodies = append(bodies, string(o.Data))
	}

	// The agent records asynchronously: let it write.
	eventually(t, "audit.jsonl has the refused target", func() bool {
		b, _ := os.ReadFile(filepath.Join(s.h.Dir, "log", "audit.jsonl"))
		return bytes.Contains(b, []byte("%2e%2e/x"))
	})

	// The secret-bearing requests were audited, their secrets redacted
	// (agent.md §5.1): the search below covers them.
	audit, _ := os.ReadFile(filepath.Join(s.h.Dir, "log", "audit.jsonl"))
	if !bytes.Contains(audit, []byte("sig=[REDACTED]")) || !bytes.Contains(audit, []byte(`"cmdline":"`+clientBinary+` -H Authorization: [REDACTED]`)) {
		t.Errorf("audit.jsonl has no redacted sig= target or client command line: the secret-bearing requests were not audited\n%s", audit[max(0, len(audit)-2000):])
	}
	secrets := map[string]string{}
	for what, v := range secretOfClient {
		secrets[what] = v
	}
	guids := map[string]bool{}
	nsig := 0
	for _, r := range s.h.Emu.Verifications(0) {
		if !r.Signed || !r.Valid || r.BodyLength != 0 || r.KeyGUID == "" || r.Class == "attestation" {
			continue
		}
		sg, key := s.signerFor(t, r.KeyGUID)
		if !guids[r.KeyGUID] {
			guids[r.KeyGUID] = true
			secrets["key hex "+r.KeyGUID] = hex.EncodeToString(key)
			secrets["key HEX "+r.KeyGUID] = strings.ToUpper(hex.EncodeToString(key))
			secrets["key base64 "+r.KeyGUID] = base64.StdEncoding.EncodeToString(key)
			secrets["key base64url "+r.KeyGUID] = base64.RawURLEncoding.EncodeToString(key)
		}
		full, _ := fullAuthorization(t, sg, r)
		f := strings.Fields(full)
		secrets["signature of "+r.Method+" "+r.RawTarget] = f[len(f)-1]
		nsig++
	}
	if len(guids) == 0 || nsig < 10 {
		t.Fatalf("%d keys, %d signatures to search for; want the suite's", len(guids), nsig)
	}

	written := map[string]string{"agent log (stdout and stderr)": s.h.LogText()}
	for _, dir := range []string{filepath.Join(s.h.Dir, "log"), filepath.Join(s.h.Dir, "state")} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasSuffix(path, ".key") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read %s: %v", path, err)
			}
			written[path] = string(b)
			return nil
		})
	}
	m, err := metrics.Fetch(agenttest.Context(t), filepath.Join(s.h.Dir, "state", "metrics.sock"))
	if err != nil {
		t.Errorf("metrics: %v", err)
	}
	written["metrics"] = string(m)
	written["error bodies"] = strings.Join(bodies, "\n")
	for where, text := range written {
		if text == "" {
			continue
		}
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("%s contains the %s: …%s…", where, what, text[max(0, i-120):min(len(text), i+len(secret)+20)])
			}
		}
	}
	t.Logf("searched %d outputs (%d bytes of agent log) for %d secrets (%d keys, %d full signatures)", len(written), len(s.h.LogText()), len(secrets), len(guids), nsig)
}

func runAs(uid int, name string, args ...string) (string, error) {
	cmd := execCommand(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
