package handler

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/handler/agentsvc"
	"github.com/mspguest/msp/handler/henv"
	"github.com/mspguest/msp/handler/internal/testbin"
	"github.com/mspguest/msp/handler/status"
)

func TestMonitorRound(t *testing.T) {
	base := t.TempDir()
	env := henv.Env{Root: base, Name: "P.T", StatusFolder: filepath.Join(base, "status"), HeartbeatFile: filepath.Join(base, "heartbeat.log")}
	os.MkdirAll(env.StatusFolder, 0o700)
	l := agentsvc.Layout{Root: filepath.Join(base, "msp")}
	os.MkdirAll(l.LogDir(), 0o750)
	bin, err := testbin.Build(testbin.FakeAgent, "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 7, 22, 10, 0, 0, 0, time.UTC)
	log := logrus.New()
	log.SetOutput(io.Discard)
	m := &Monitor{Env: env, Layout: l, Bundled: agentsvc.Agent{Binary: bin}, Log: log, Now: func() time.Time { return now }}
	ctx := context.Background()

	m.Round(ctx)
	if _, err := os.Stat(status.FileName(env.StatusFolder, 0)); !os.IsNotExist(err) {
		t.Fatal("the monitor wrote a status before any enable")
	}
	henv.WriteMarker(base, 5, "h")
	writeAggregate := func(ts time.Time, version string) {
		doc := map[string]any{"timestamp": ts.Format("2006-01-02T15:04:05.000"),
			"proxyAgentStatus":       map[string]any{"version": version, "status": "SUCCESS"},
			"proxyConnectionSummary": []any{}, "failedAuthenticateSummary": []any{}}
		data, _ := json.Marshal(doc)
		os.WriteFile(l.AggregateStatus(), data, 0o640)
	}
	read := func() (string, int, string) {
		var d statusDoc
		data, _ := os.ReadFile(status.FileName(env.StatusFolder, 5))
		json.Unmarshal(data, &d)
		return d[0].Status.Status, d[0].Status.Code, d[0].Status.FormattedMessage.Message
	}

	writeAggregate(now.Add(-time.Minute), "2.0.0")
	m.Round(ctx)
	if st, _, _ := read(); st != "success" {
		t.Fatalf("fresh status: %s", st)
	}
	hb, _ := os.ReadFile(env.HeartbeatFile)
	if !strings.Contains(string(hb), `"Ready"`) {
		t.Fatalf("heartbeat %s", hb)
	}

	writeAggregate(now.Add(-10*time.Minute), "2.0.0")
	m.Round(ctx)
	if st, _, msg := read(); st != "transitioning" || !strings.Contains(msg, "old") {
		t.Fatalf("stale status: %s %q", st, msg)
	}
	for range status.FailuresToError {
		m.Round(ctx)
	}
	if st, code, _ := read(); st != "error" || code != 4 {
		t.Fatalf("after 20 failures: %s code %d", st, code)
	}

	writeAggregate(now, "1.9.0")
	m.Round(ctx)
	if st, _, msg := read(); st != "error" || !strings.Contains(msg, "upgrade has not finished") {
		t.Fatalf("version mismatch: %s %q", st, msg)
	}
	writeAggregate(now, "2.0.0")
	m.Round(ctx)
	if st, _, _ := read(); st != "transitioning" {
		t.Fatalf("first success after error: %s", st)
	}

	// Run ends when the handler root goes (the version was removed).
	done := make(chan error, 1)
	m.Interval = 10 * time.Millisecond
	go func() { done <- m.Run(ctx) }()
	// The running monitor may be writing a status file while the tree is
	// removed, which makes one RemoveAll fail with the directory left:
	// remove until it is gone, as waagent's clean-up would have to.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_ = os.RemoveAll(base)
		if _, err := os.Stat(base); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot remove %s", base)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the monitor outlived its handler root")
	}
}
