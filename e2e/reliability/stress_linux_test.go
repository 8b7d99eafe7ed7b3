//go:build stress

package reliability

import (
	"testing"
	"time"
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
func TestStressKillRestartRepeated(t *testing.T) { killUnderLoad(t, 5, time.Second) }

// TestStressRotationRepeated: ten key rotations 1.5 s apart under load.
func TestStressRotationRepeated(t *testing.T) { rotateUnderLoad(t, 10, 1500*time.Millisecond, 4) }
