//go:build stress

package reliability

import (
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/hostsim"
)

// The heavy variants of the load and fault cases: `make stress`.

func TestStressIdleFlood5000(t *testing.T) { idleFlood(t, 5000, 1000) }

// TestStressSlowlorisManyUsers: slowloris from 20 users × 60 connections,
// more than the agent's total cap (1024): root is still served from the
// connections reserved for it; another user shares the others' pool and
// gets a clean 503 overloaded while it is full.
func TestStressSlowlorisManyUsers(t *testing.T) {
	h := newAgent(t, map[string]any{"headerReadSeconds": 5})
	addr := h.Emu.Addrs().IMDS
	var slow []*client
	for uid := 2000; uid < 2020; uid++ {
		slow = append(slow, startClient(t, h, uid, clientSpec{Mode: "slowloris", Addr: addr, Request: slowHead, N: 60, Interval: 200 * time.Millisecond, Timeout: 15 * time.Second}))
	}
	time.Sleep(500 * time.Millisecond)
	r, o := legit(t, h, 100)
	for _, c := range slow {
		c.wait(t)
	}
	t.Logf("1200 slowloris connections from 20 users: root %v %v p99 %v; uid %d %v %v p99 %v", r.Status, r.Reason, r.percentile(99), otherUID, o.Status, o.Reason, o.percentile(99))
	requireAllOK(t, "root beside 1200 slowloris connections", r, 100)
	if o.Status[200]+o.Reason["overloaded"] != o.answered() {
		t.Errorf("uid %d: %v %v; want 200 or 503 overloaded", otherUID, o.Status, o.Reason)
	}
}

// TestStressKillRestartRepeated: five SIGKILL and restart cycles under
// load in enforce mode.
func TestStressKillRestartRepeated(t *testing.T) {
	const timeout = 3 * time.Second
	h := newAgent(t, nil)
	since := lastSeq(h)
	spec := clientSpec{Mode: "loop", Addr: h.Emu.Addrs().IMDS, Request: imdsRequest, N: 4, Duration: 40 * time.Second, Timeout: timeout}
	root, other := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	for range 5 {
		time.Sleep(3 * time.Second)
		h.Stop(syscall.SIGKILL)
		time.Sleep(time.Second)
		h.Start()
	}
	r, o := root.wait(t), other.wait(t)
	for _, c := range []clientResult{r, o} {
		if c.Max > timeout+500*time.Millisecond || c.Errors["timeout"] > 0 {
			t.Errorf("an attempt took %v (%d timeouts); want each bounded by %v", c.Max, c.Errors["timeout"], timeout)
		}
	}
	for _, rec := range h.Emu.Verifications(since) {
		if rec.Endpoint == "imds" && !rec.Valid && rec.Status < 300 {
			t.Errorf("host accepted an unverified request: %+v", rec)
		}
	}
	t.Logf("5 kills under load: root %v %v, uid %d %v %v; longest %v/%v", r.Status, r.Errors, otherUID, o.Status, o.Errors, r.Max, o.Max)
}

// TestStressRotationRepeated: ten key rotations 1.5 s apart under load.
func TestStressRotationRepeated(t *testing.T) {
	h := newAgent(t, nil)
	since := lastSeq(h)
	spec := clientSpec{Mode: "loop", Addr: h.Emu.Addrs().IMDS, Request: imdsRequest, N: 4, Duration: 17 * time.Second, Timeout: 5 * time.Second}
	root, other := startClient(t, h, 0, spec), startClient(t, h, otherUID, spec)
	for inc := uint32(2); inc <= 11; inc++ {
		time.Sleep(1500 * time.Millisecond)
		h.Apply(hostsim.Patch{KeyIncarnationID: &inc})
	}
	r, o := root.wait(t), other.wait(t)
	requireAllOK(t, "root", r, r.answered())
	requireAllOK(t, "other uid", o, o.answered())
	keys := map[string]bool{}
	for _, rec := range h.Emu.Verifications(since) {
		if rec.Endpoint == "imds" {
			keys[rec.KeyGUID] = true
			if !rec.Valid || rec.Status != 200 {
				t.Errorf("host record %d: valid %v (%s) status %d", rec.Seq, rec.Valid, rec.Reason, rec.Status)
			}
		}
	}
	if len(keys) < 10 {
		t.Errorf("%d keys seen; want 11 (ten rotations)", len(keys))
	}
	t.Logf("10 rotations under load: %d + %d requests, none failed, %d keys", r.answered(), o.answered(), len(keys))
}
