package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherKeepsLastGoodConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write := func(s string) {
		t.Helper()
		// Write and rename, as editors and config management do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"pollIntervalSeconds": 5}`)
	w, err := newWatcher(path, path)
	if err != nil {
		t.Fatal(err)
	}
	poll := func(want time.Duration) {
		t.Helper()
		if got := w.Current().PollInterval; got != want {
			t.Fatalf("poll interval in force %v; want %v", got, want)
		}
	}
	for _, tc := range []struct {
		name    string
		content string // "" deletes the file
		changed bool
		errSub  string
		inForce time.Duration
	}{
		{"unchanged", "-", false, "", 5 * time.Second},
		{"valid change", `{"pollIntervalSeconds": 6}`, true, "", 6 * time.Second},
		{"same content rewritten", `{"pollIntervalSeconds": 6}`, false, "", 6 * time.Second},
		{"invalid: last good stays", `{"pollIntervalSeconds": 6, "bogus": 1}`, false, "bogus: unknown field", 6 * time.Second},
		{"same invalid content reported once", `{"pollIntervalSeconds": 6, "bogus": 1}`, false, "", 6 * time.Second},
		{"other invalid content", `{"pollIntervalSeconds": 6,`, false, "invalid JSON", 6 * time.Second},
		{"fixed", `{"pollIntervalSeconds": 7}`, true, "", 7 * time.Second},
		{"deleted default file: defaults", "", true, "", 15 * time.Second},
		{"created again", `{"pollIntervalSeconds": 8}`, true, "", 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.content {
			case "-":
			case "":
				os.Remove(path)
			default:
				write(tc.content)
			}
			c, err := w.Check()
			if (c != nil) != tc.changed {
				t.Errorf("changed %v; want %v", c != nil, tc.changed)
			}
			if (err != nil) != (tc.errSub != "") || err != nil && !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("err %v; want %q", err, tc.errSub)
			}
			poll(tc.inForce)
		})
	}
	// SIGHUP: Reload reports the failure every time, unchanged content is
	// no change.
	write(`{"logLevel": "loud"}`)
	for range 2 {
		if c, err := w.Reload(); c != nil || err == nil || !strings.Contains(err.Error(), `logLevel: "loud"`) {
			t.Errorf("reload of a bad file: %v, %v", c, err)
		}
	}
	poll(8 * time.Second)
	write(`{"pollIntervalSeconds": 8}`)
	if c, err := w.Reload(); c != nil || err != nil {
		t.Errorf("reload of the same content: %v, %v", c, err)
	}
}

func TestWatcherExplicitFileDeleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.json")
	os.WriteFile(path, []byte(`{"logLevel": "debug"}`), 0o644)
	w, err := NewWatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if c, err := w.Check(); c != nil || err == nil {
		t.Errorf("deleted explicit file: %v, %v; want an error", c, err)
	}
	if w.Current().LogLevel.String() != "debug" {
		t.Error("the last good configuration was dropped")
	}
}

func TestWatcherRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{}`), 0o644)
	w, err := NewWatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	changes, errs := make(chan *Config, 4), make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx, 5*time.Millisecond, func(c *Config) { changes <- c }, func(err error) { errs <- err })
		close(done)
	}()
	defer func() { cancel(); <-done }()
	os.WriteFile(path, []byte(`{"netnsPolicy": "nope"}`), 0o644)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "netnsPolicy") {
			t.Errorf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("invalid file not reported")
	}
	os.WriteFile(path, []byte(`{"netnsPolicy": "deny"}`), 0o644)
	select {
	case c := <-changes:
		if c.NetnsPolicy != NetnsDeny || w.Current() != c {
			t.Errorf("change %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("change not seen")
	}
}
