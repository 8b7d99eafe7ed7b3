//go:build stress

package hostsim

import (
	"sync"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/guest"
)

// TestStressExemptUpload100MiB: the largest exempt upload the emulator
// accepts (100 MiB, above the agent's 100 MB limit) arrives whole: counted,
// hashed, answered 200.
func TestStressExemptUpload100MiB(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	status, sum := upload(t, e.Addrs().HostGA, "PUT", "/vmAgentLog", maxStreamedBody, 1<<20)
	if rec := lastRecord(t, e); status != 200 || rec.BodyLength != maxStreamedBody || rec.BodySHA256 != sum || !rec.Streamed {
		t.Errorf("100 MiB upload: status %d, record %+v", status, rec)
	}
}

// TestStressConcurrentSignedRequests: 32 guests send 200 signed requests
// each at the same time; every one verifies and is recorded once.
func TestStressConcurrentSignedRequests(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	g := latched(t, e)
	before := len(e.Verifications(0))
	const workers, each = 32, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(gg guest.Guest) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp, err := gg.Do(e.Addrs().IMDS, gg.Request("GET", "/metadata/instance?api-version=2021-02-01", "169.254.169.254", nil, rawhttp.Header{Name: "Metadata", Value: "true"}))
				if err != nil || resp.Status != 200 {
					t.Errorf("request %d: %v %v", i, resp, err)
					return
				}
			}
		}(*g)
	}
	wg.Wait()
	recs := e.Verifications(0)[before:]
	invalid := 0
	for _, r := range recs {
		if !r.Valid {
			invalid++
		}
	}
	if len(recs) != workers*each || invalid != 0 {
		t.Errorf("%d records, %d invalid; want %d valid", len(recs), invalid, workers*each)
	}
}
