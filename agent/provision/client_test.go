package provision

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// serveProvision runs a loopback server whose /provision answers come from
// answer; it returns its address.
func serveProvision(t *testing.T, answer func(r *http.Request) (int, string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := answer(r)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestWaitRetriesUntilFinished(t *testing.T) {
	var calls, notifies atomic.Int32
	addr := serveProvision(t, func(r *http.Request) (int, string) {
		if r.URL.Path != "/provision" || r.Header.Get("Metadata") != "true" || r.Header.Get("x-ms-azure-time-tick") == "" {
			return 400, ""
		}
		if r.Header.Get("x-ms-azure-notify") != "" {
			notifies.Add(1)
		}
		if calls.Add(1) < 3 {
			return 200, `{"finished":false,"errorMessage":""}`
		}
		return 200, `{"finished":true,"errorMessage":""}`
	})
	res := Wait(context.Background(), addr, 5*time.Second)
	if res.Code != ExitFinished {
		t.Fatalf("Wait = %+v; want exit 0", res)
	}
	if calls.Load() != 3 || notifies.Load() != 1 {
		t.Errorf("calls %d, notifies %d; want 3 and 1 (notify on the first query only)", calls.Load(), notifies.Load())
	}
}

func TestWaitExitCodes(t *testing.T) {
	failed := serveProvision(t, func(*http.Request) (int, string) {
		return 200, `{"finished":true,"errorMessage":"keyLatchStatus - attestation refused\r\n"}`
	})
	never := serveProvision(t, func(*http.Request) (int, string) {
		return 200, `{"finished":false,"errorMessage":""}`
	})
	garbage := serveProvision(t, func(*http.Request) (int, string) { return 200, `<html>` })
	// A port nothing listens on: connection refused on every attempt.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name, addr string
		wait       time.Duration
		code       int
		msg        string
	}{
		{"finished with an error", failed, time.Second, ExitFailed, "keyLatchStatus - attestation refused\r\n"},
		{"never finishes", never, 300 * time.Millisecond, ExitNotFinished, "provisioning not finished"},
		{"unreachable", closed, 300 * time.Millisecond, ExitNotFinished, ""},
		{"not the provisioning JSON", garbage, 0, ExitNotFinished, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res := Wait(context.Background(), tc.addr, tc.wait)
			if res.Code != tc.code || (tc.msg != "" && res.Message != tc.msg) || res.Message == "" {
				t.Errorf("Wait = %+v; want code %d message %q", res, tc.code, tc.msg)
			}
			if el := time.Since(start); el > tc.wait+3*time.Second {
				t.Errorf("Wait took %v with wait %v", el, tc.wait)
			}
		})
	}
}

// TestWaitSurvivesAgentRestart: the agent comes up while --status waits
// (GPA #287).
func TestWaitSurvivesAgentRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"finished":true,"errorMessage":""}`))
	})}
	t.Cleanup(func() { _ = srv.Close() })
	go func() {
		time.Sleep(300 * time.Millisecond)
		if ln, err := net.Listen("tcp", addr); err == nil {
			_ = srv.Serve(ln)
		}
	}()
	if res := Wait(context.Background(), addr, 5*time.Second); res.Code != ExitFinished {
		t.Fatalf("Wait = %+v; want exit 0 once the agent listens", res)
	}
}
