package hostsim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
	"github.com/mspguest/msp/hostsim/wire"
)

// startEmulator runs an in-process emulator on loopback port 0 addresses
// with the given start-up state (nil: DefaultState) and stops it at
// cleanup. Logs go to the test log.
func startEmulator(t *testing.T, st *State) *Emulator {
	t.Helper()
	log := logrus.New()
	log.SetOutput(testWriter{t})
	log.SetLevel(logrus.WarnLevel)
	e, err := Start(Config{
		IMDSAddr:       "127.0.0.169:0",
		WireServerAddr: "127.0.0.168:0",
		HostGAAddr:     "127.0.0.168:0",
		Initial:        st,
		Log:            log,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// stateWith returns DefaultState with every mode set to m.
func stateWith(m hostproto.Mode) *State {
	s := DefaultState()
	s.Modes = hostproto.Modes{IMDS: m, WireServer: m, HostGAPlugin: m}
	return &s
}

// latched returns a root guest holding an attested key.
func latched(t *testing.T, e *Emulator) *guest.Guest {
	t.Helper()
	g := &guest.Guest{IsRoot: true}
	if _, err := g.Latch(e.Addrs().WireServer); err != nil {
		t.Fatalf("latch: %v", err)
	}
	return g
}

// lastRecord returns the newest verification record.
func lastRecord(t *testing.T, e *Emulator) Record {
	t.Helper()
	recs := e.Verifications(0)
	if len(recs) == 0 {
		t.Fatal("no verification records")
	}
	return recs[len(recs)-1]
}

func mustPatch(t *testing.T, e *Emulator, js string) {
	t.Helper()
	p, err := DecodePatch([]byte(js))
	if err != nil {
		t.Fatalf("DecodePatch(%s): %v", js, err)
	}
	if _, err := e.Apply(p); err != nil {
		t.Fatalf("Apply(%s): %v", js, err)
	}
}

func ptr[T any](v T) *T { return &v }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// parseReceived serializes a guest request and reads it back with the
// emulator's reader, body buffered, as the server would.
func parseReceived(t testing.TB, r *rawhttp.Request) *received {
	t.Helper()
	var buf bytes.Buffer
	r.WriteTo(&buf)
	br := bufio.NewReader(&buf)
	req, err := wire.ReadHead(br)
	if err != nil {
		t.Fatalf("read back %s %s: %v", r.Method, r.Target, err)
	}
	if err := req.ReadBody(br, maxBody); err != nil {
		t.Fatalf("read back body: %v", err)
	}
	return &received{req: req, bodyLen: int64(len(req.Body))}
}
