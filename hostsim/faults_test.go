package hostsim

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		fault  Fault
		check  func(t *testing.T, resp *guest.Response, err error, took time.Duration)
		record bool // the faulted request leaves a record
	}{
		{Fault{Endpoint: "imds", Kind: FaultRefuse, Count: 1}, func(t *testing.T, resp *guest.Response, err error, _ time.Duration) {
			if err == nil {
				t.Errorf("refuse: got %d; want a connection error", resp.Status)
			}
		}, false},
		{Fault{Endpoint: "wireserver", Kind: FaultDelay, DelayMs: 150, Count: 1}, func(t *testing.T, resp *guest.Response, err error, took time.Duration) {
			if err != nil || resp.Status != 200 || took < 150*time.Millisecond {
				t.Errorf("delay: %v %v after %v; want 200 after >= 150ms", resp, err, took)
			}
		}, true},
		{Fault{Endpoint: "hostga", Kind: FaultHTTP500, Count: 1}, func(t *testing.T, resp *guest.Response, err error, _ time.Duration) {
			if err != nil || resp.Status != 500 {
				t.Errorf("http500: %v %v", resp, err)
			}
		}, true},
		{Fault{Endpoint: "imds", Kind: FaultMalformedJSON, Count: 1}, func(t *testing.T, resp *guest.Response, err error, _ time.Duration) {
			if err != nil || resp.Status != 200 || json.Valid(resp.Body) {
				t.Errorf("malformed-json: %v %v; want 200 with invalid JSON", resp, err)
			}
		}, true},
		{Fault{Endpoint: "wireserver", Kind: FaultDropAfterHeaders, Count: 1}, func(t *testing.T, resp *guest.Response, err error, _ time.Duration) {
			if err == nil {
				t.Errorf("drop-after-headers: got a full answer %d", resp.Status)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.fault.Kind, func(t *testing.T) {
			e := startEmulator(t, stateWith(0)) // disabled: faults only
			if err := e.SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			ep, _ := hostproto.ParseEndpoint(tt.fault.Endpoint)
			addr, target := endpointProbe(e, ep)
			g := &guest.Guest{IsRoot: true, Timeout: 2 * time.Second}
			req := g.Request("GET", target, "h", nil, rawhttp.Header{Name: "Metadata", Value: "true"})
			start := time.Now()
			resp, err := g.Do(addr, req)
			tt.check(t, resp, err, time.Since(start))
			recs := e.Verifications(0)
			if tt.record && (len(recs) != 1 || recs[0].Fault != tt.fault.Kind) {
				t.Errorf("records %s; want one with fault %q", jsonString(recs), tt.fault.Kind)
			}
			// count 1: the next request is served normally.
			resp, err = g.Do(addr, req)
			if err != nil || resp.Status != 200 {
				t.Errorf("after the fault was used up: %v %v; want 200", resp, err)
			}
		})
	}
}

func TestFaultUntilReset(t *testing.T) {
	e := startEmulator(t, stateWith(0))
	if err := e.SetFault(Fault{Endpoint: "hostga", Kind: FaultHTTP500}); err != nil {
		t.Fatal(err)
	}
	g := &guest.Guest{IsRoot: true}
	for i := 0; i < 3; i++ {
		if resp, _ := g.Do(e.Addrs().HostGA, g.Request("GET", "/health", "h", nil)); resp == nil || resp.Status != 500 {
			t.Fatalf("request %d: %v; want 500 until reset", i, resp)
		}
	}
	e.Reset()
	if resp, _ := g.Do(e.Addrs().HostGA, g.Request("GET", "/health", "h", nil)); resp == nil || resp.Status != 200 {
		t.Fatalf("after reset: %v; want 200", resp)
	}
}
