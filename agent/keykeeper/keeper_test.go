package keykeeper

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim"
	"github.com/mspguest/msp/hostsim/guest"
)

// signedGoalState sends a signed WireServer request with the state's key
// and returns the emulator's verdict.
func signedGoalState(t *testing.T, h *host, s *State) hostsim.Record {
	t.Helper()
	g := &guest.Guest{Signer: s.Signer, IsRoot: true}
	resp, err := g.Do(h.Addrs().WireServer, g.Request("GET", "/machine?comp=goalstate", guest.WireServerHost, nil))
	if err != nil {
		t.Fatal(err)
	}
	recs := h.records(t, "GET", "/machine?comp=goalstate")
	last := recs[len(recs)-1]
	if resp.Status != 200 {
		t.Errorf("signed request answered %d (%s)", resp.Status, last.Reason)
	}
	return last
}

func TestFirstStartAcquiresAttestsAndSigns(t *testing.T) {
	h := startHost(t)
	dir := keysDir(t)
	r := run(t, h, dir, nil)
	s := r.Current()
	if !s.Latched || s.Signer == nil || s.LastError != nil {
		t.Fatalf("after the first poll: latched %v signer %v err %v", s.Latched, s.Signer, s.LastError)
	}
	view := h.View()
	if view.AttestedKeyGUID == nil || *view.AttestedKeyGUID != s.KeyGUID || s.Signer.GUID() != s.KeyGUID {
		t.Fatalf("host attested %v; keeper holds %s", view.AttestedKeyGUID, s.KeyGUID)
	}
	if s.SecureChannelState != "WireServer Enforce -  IMDS Enforce - HostGA Enforce" {
		t.Errorf("state string %q", s.SecureChannelState)
	}
	if want := (hostproto.Modes{IMDS: hostproto.ModeEnforce, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}); s.HostModes != want {
		t.Errorf("modes %+v", s.HostModes)
	}
	if s.KeyIncarnationID == nil || *s.KeyIncarnationID != 1 || s.RuleID(hostproto.HostGAPlugin) != "hostga-profile-v1" || s.Item(hostproto.HostGAPlugin).ID != "wireserver-profile-v1" {
		t.Errorf("incarnation %v, host rules not passed on: %+v", s.KeyIncarnationID, s.Status.AuthorizationRules)
	}
	// The attestation was signed with the new key, and verified.
	att := h.records(t, "POST", "/secure-channel/key/")
	if len(att) != 1 || !att[0].Valid || att[0].KeyGUID != s.KeyGUID || att[0].Class != "attestation" {
		t.Fatalf("attestation records %+v", att)
	}
	// The exposed signer is accepted by the host in enforce mode.
	if rec := signedGoalState(t, h, s); !rec.Valid || rec.KeyGUID != s.KeyGUID {
		t.Errorf("signed request: %+v", rec)
	}
	// Persisted 0600 in a 0700 directory, and the key never logged.
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("keys dir: %v %v", fi.Mode(), err)
	}
	path := r.Store().Path(s.KeyGUID)
	fi, err = os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	k, err := ReadKeyFile(mustRead(t, path), s.KeyGUID)
	if err != nil {
		t.Fatal(err)
	}
	r.step(t) // signed status with the key in memory
	st := h.records(t, "GET", "/secure-channel/status")
	if last := st[len(st)-1]; !last.Signed || !last.Valid || last.KeyGUID != s.KeyGUID {
		t.Errorf("status call with a key in memory: %+v", last)
	}
	logs := r.logs.String()
	if strings.Contains(strings.ToLower(logs), strings.ToLower(k.Key[:16])) {
		t.Error("the key appears in the log")
	}
	if !strings.Contains(logs, s.KeyGUID) {
		t.Error("the key guid is not logged")
	}
	if got := h.records(t, "POST", "/secure-channel/key"); len(got) != 2 { // acquisition + attestation
		t.Errorf("%d key calls; want 2", len(got))
	}
}

func TestRestartReusesPersistedKey(t *testing.T) {
	h := startHost(t)
	dir := keysDir(t)
	first := run(t, h, dir, nil)
	guid := first.Current().KeyGUID
	first.stop()
	before := len(h.records(t, "POST", "/secure-channel/key"))

	// The second run marks its sockets as the daemon does (needs root).
	second := run(t, h, dir, func(o *Options) { o.ExemptMark = 0x4d5350 })
	s := second.Current()
	if !s.Latched || s.KeyGUID != guid || s.Signer == nil {
		t.Fatalf("after restart: latched %v guid %q; want %q", s.Latched, s.KeyGUID, guid)
	}
	if after := len(h.records(t, "POST", "/secure-channel/key")); after != before {
		t.Errorf("restart made %d new key calls; want none", after-before)
	}
	if rec := signedGoalState(t, h, s); !rec.Valid {
		t.Errorf("reused key refused: %+v", rec)
	}
}

func TestHostModeChangesAreDelivered(t *testing.T) {
	h := startHost(t)
	r := run(t, h, keysDir(t), nil)
	guid := r.Current().KeyGUID
	audit, off := hostproto.ModeAudit, hostproto.ModeDisabled
	for _, tc := range []struct {
		name   string
		patch  hostsim.Patch
		state  string
		modes  hostproto.Modes
		signer bool
	}{
		{"imds audit", hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: &audit}}, "WireServer Enforce -  IMDS Audit - HostGA Enforce",
			hostproto.Modes{IMDS: audit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}, true},
		{"wireserver disabled", hostsim.Patch{Modes: &hostsim.ModesPatch{WireServer: &off}}, "WireServer Disabled -  IMDS Audit - HostGA Disabled",
			hostproto.Modes{IMDS: audit}, true},
		{"secure channel off", hostsim.Patch{SecureChannelEnabled: ptr(false)}, "disabled", hostproto.Modes{}, false},
		{"back on: key reloaded from disk", hostsim.Patch{SecureChannelEnabled: ptr(true), Modes: &hostsim.ModesPatch{WireServer: ptr(hostproto.ModeEnforce)}},
			"WireServer Enforce -  IMDS Audit - HostGA Enforce", hostproto.Modes{IMDS: audit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}, true},
		{"v1", hostsim.Patch{Version: ptr("1.0")}, "wireserver",
			hostproto.Modes{IMDS: audit, WireServer: hostproto.ModeEnforce, HostGAPlugin: hostproto.ModeEnforce}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.set(t, tc.patch)
			seq := r.Current().Seq
			s := r.step(t)
			if s.Seq != seq+1 || s.SecureChannelState != tc.state || s.HostModes != tc.modes {
				t.Errorf("state %q modes %+v seq %d; want %q %+v seq %d", s.SecureChannelState, s.HostModes, s.Seq, tc.state, tc.modes, seq+1)
			}
			if (s.Signer != nil) != tc.signer || !s.Latched {
				t.Errorf("signer %v latched %v; want signer %v, latched", s.Signer, s.Latched, tc.signer)
			}
			if tc.signer && s.KeyGUID != guid {
				t.Errorf("key %s; want %s kept", s.KeyGUID, guid)
			}
		})
	}
	if n := len(h.records(t, "POST", "/secure-channel/key")); n != 2 {
		t.Errorf("%d key calls; want only the first acquisition and attestation", n)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRotationKeepsOldKeyUntilAttested(t *testing.T) {
	h := startHost(t)
	dir := keysDir(t)
	r := run(t, h, dir, func(o *Options) { o.BackoffMax = 2 * time.Second })
	k1 := r.Current().KeyGUID

	// The next key's file cannot be written (a directory stands in its
	// place): the rotation fails after acquisition, before attestation.
	const k2 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	h.set(t, hostsim.Patch{KeyIncarnationID: ptr(uint32(2)), NextKey: &hostsim.NextKey{GUID: k2, Key: strings.Repeat("ab", 32)}})
	if err := os.MkdirAll(r.Store().Path(k2)+"/x", 0o700); err != nil {
		t.Fatal(err)
	}
	s := r.step(t)
	if s.LastError == nil || s.KeyGUID != k1 || s.Signer == nil || !s.Latched {
		t.Fatalf("failed rotation: err %v key %s latched %v; want an error and %s still signing", s.LastError, s.KeyGUID, s.Latched, k1)
	}
	if rec := signedGoalState(t, h, s); !rec.Valid || rec.KeyGUID != k1 {
		t.Errorf("old key during the rotation: %+v", rec)
	}
	os.RemoveAll(r.Store().Path(k2))

	s = r.stepUntil(t, 3, "rotated", func(s *State) bool { return s.KeyGUID != k1 && s.LastError == nil })
	k3 := s.KeyGUID
	if s.KeyIncarnationID == nil || *s.KeyIncarnationID != 2 {
		t.Errorf("new key incarnation %v; want 2", s.KeyIncarnationID)
	}
	if v := h.View(); *v.AttestedKeyGUID != k3 || v.Rotating {
		t.Errorf("host attested %s rotating %v; want %s", *v.AttestedKeyGUID, v.Rotating, k3)
	}
	if rec := signedGoalState(t, h, s); !rec.Valid || rec.KeyGUID != k3 {
		t.Errorf("new key: %+v", rec)
	}
	files := keyFiles(t, dir)
	slices.Sort(files)
	want := []string{k1, k3}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("key files %v; want the current and the previous %v", files, want)
	}

	// A second rotation deletes k1: only the current and previous stay.
	h.set(t, hostsim.Patch{KeyIncarnationID: ptr(uint32(3))})
	s = r.stepUntil(t, 3, "rotated again", func(s *State) bool { return s.KeyGUID != k3 && s.LastError == nil })
	files = keyFiles(t, dir)
	slices.Sort(files)
	want = []string{k3, s.KeyGUID}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("key files %v; want %v", files, want)
	}
}

func TestHostOutageBacksOffAndRecovers(t *testing.T) {
	h := startHost(t)
	jitter := 0.5
	r := run(t, h, keysDir(t), func(o *Options) {
		o.Jitter = func() float64 { return jitter }
		o.CallTimeout = 300 * time.Millisecond
	})
	good := r.Current()
	for _, f := range []hostsim.Fault{
		{Kind: hostsim.FaultRefuse},
		{Kind: hostsim.FaultHTTP500},
		{Kind: hostsim.FaultMalformedJSON},
		{Kind: hostsim.FaultDelay, DelayMs: 1500},
		{Kind: hostsim.FaultDropAfterHeaders},
	} {
		t.Run(f.Kind, func(t *testing.T) {
			h.fault(t, f)
			// Back-off 1 s doubling to the 15 s interval, jittered in [d/2, d).
			var delays []time.Duration
			for range 6 {
				s := r.step(t)
				if s.LastError == nil || s.Signer != good.Signer || s.Status != good.Status || !s.Latched {
					t.Fatalf("during the outage: err %v, key or status replaced", s.LastError)
				}
				delays = append(delays, s.NextPoll)
			}
			want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 11250 * time.Millisecond, 11250 * time.Millisecond}
			if !slices.Equal(delays, want) {
				t.Errorf("back-off %v; want %v", delays, want)
			}
			if r.Current().ConsecutiveFailures != 6 {
				t.Errorf("failures %d; want 6", r.Current().ConsecutiveFailures)
			}
			h.fault(t, hostsim.Fault{Kind: hostsim.FaultNone})
			s := r.step(t)
			if s.LastError != nil || s.ConsecutiveFailures != 0 || s.NextPoll != DefaultPollInterval || s.KeyGUID != good.KeyGUID {
				t.Errorf("after recovery: err %v failures %d next %v key %s", s.LastError, s.ConsecutiveFailures, s.NextPoll, s.KeyGUID)
			}
			good = s
		})
	}
}

func TestBackoffJitterVaries(t *testing.T) {
	h := startHost(t)
	h.fault(t, hostsim.Fault{Kind: hostsim.FaultHTTP500})
	r := run(t, h, keysDir(t), func(o *Options) { o.FastPollWindow = time.Millisecond })
	seen := map[time.Duration]bool{}
	for range 12 {
		s := r.step(t)
		if s.NextPoll < DefaultPollInterval/2 && s.ConsecutiveFailures > 5 || s.NextPoll >= DefaultPollInterval {
			t.Errorf("failure %d: delay %v outside [7.5s, 15s)", s.ConsecutiveFailures, s.NextPoll)
		}
		seen[s.NextPoll] = true
	}
	if len(seen) < 6 {
		t.Errorf("only %d distinct delays in 12 failures: no jitter", len(seen))
	}
}

func TestFastPollWhileUnknown(t *testing.T) {
	h := startHost(t)
	h.fault(t, hostsim.Fault{Kind: hostsim.FaultRefuse})
	r := run(t, h, keysDir(t), nil)
	var elapsed time.Duration
	for elapsed < DefaultFastPollWindow-2*time.Second {
		s := r.Current()
		if s.SecureChannelState != hostproto.StateUnknown || s.NextPoll > time.Second {
			t.Fatalf("at %v: state %q next poll %v; want Unknown and 1 s", elapsed, s.SecureChannelState, s.NextPoll)
		}
		elapsed += r.clk.fire(t)
		r.clk.waitTimer(t)
	}
	s := r.stepUntil(t, 5, "backing off past the fast window", func(s *State) bool { return s.NextPoll > 5*time.Second })
	if s.Latched {
		t.Error("latched without a status")
	}
	h.fault(t, hostsim.Fault{Kind: hostsim.FaultNone})
	s = r.step(t)
	if !s.Latched || s.NextPoll != DefaultPollInterval {
		t.Errorf("recovered: latched %v next %v", s.Latched, s.NextPoll)
	}
}

func TestInvalidPayloadKeepsPreviousState(t *testing.T) {
	h := startHost(t)
	r := run(t, h, keysDir(t), nil)
	good := r.Current()
	for _, tc := range []struct{ name, payload, want string }{
		{"version", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"3.0","secureChannelEnabled":false}`, `version "3.0"`},
		{"vtpm", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"vtpm","version":"2.0","secureChannelEnabled":false}`, "vtpm"},
		{"scheme", `{"authorizationScheme":"HMAC","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"Disabled"}`, "authorizationScheme"},
		{"not json", `[1,2]`, "key status"},
		{"bad guid", `{"authorizationScheme":"Azure-HMAC-SHA256","keyDeliveryMethod":"http","version":"1.0","secureChannelState":"Disabled","keyGuid":"x"}`, "keyGuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.set(t, hostsim.Patch{StatusOverride: []byte(tc.payload)})
			s := r.step(t)
			if s.LastError == nil || !strings.Contains(s.LastError.Error(), tc.want) {
				t.Errorf("error %v; want one mentioning %q", s.LastError, tc.want)
			}
			if s.Status != good.Status || s.Signer != good.Signer || s.SecureChannelState != good.SecureChannelState || s.HostModes != good.HostModes || !s.Latched {
				t.Errorf("an invalid payload changed the state: %q %+v", s.SecureChannelState, s.HostModes)
			}
		})
	}
	h.set(t, hostsim.Patch{StatusOverride: []byte("null")})
	if s := r.step(t); s.LastError != nil || s.KeyGUID != good.KeyGUID {
		t.Errorf("after the override: %v", s.LastError)
	}
}

func TestWake(t *testing.T) {
	h := startHost(t)
	r := run(t, h, keysDir(t), nil)
	// Stable state: a wake-up changes nothing and the sleep goes on.
	if !r.Current().Stable() {
		t.Fatal("enforced state with a key is not stable")
	}
	seq := r.Current().Seq
	r.Wake()
	time.Sleep(50 * time.Millisecond)
	if s := r.Current(); s.Seq != seq || r.clk.pending() != 1 {
		t.Fatalf("wake-up in a stable state delivered seq %d (was %d)", s.Seq, seq)
	}
	// Disabled: the wake-up resets to Unknown and polls at once.
	h.set(t, hostsim.Patch{SecureChannelEnabled: ptr(false)})
	if s := r.step(t); !s.Disabled() || !s.Latched {
		t.Fatalf("disabled: %q latched %v", s.SecureChannelState, s.Latched)
	}
	seq = r.Current().Seq
	r.Wake()
	var reset, polled *State
	for reset == nil || polled == nil {
		select {
		case s := <-r.states:
			if s.Seq == seq+1 {
				reset = s
			}
			if s.Seq == seq+2 {
				polled = s
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no state after the wake-up")
		}
	}
	if reset.SecureChannelState != hostproto.StateUnknown || reset.Latched || reset.Status != nil || reset.Stable() {
		t.Errorf("reset state %q latched %v", reset.SecureChannelState, reset.Latched)
	}
	if !polled.Disabled() || !polled.Latched || polled.Stable() {
		t.Errorf("polled state %q latched %v", polled.SecureChannelState, polled.Latched)
	}
}

func TestHostTime(t *testing.T) {
	h := startHost(t)
	h.set(t, hostsim.Patch{ClockOffsetSeconds: ptr(3600)})
	r := run(t, h, keysDir(t), nil)
	s := r.Current()
	if d := s.HostTimeOffset - time.Hour; d < -3*time.Second || d > 3*time.Second {
		t.Fatalf("host time offset %v; want about 1h", s.HostTimeOffset)
	}
	// Requests carry host time.
	r.step(t)
	st := h.records(t, "GET", "/secure-channel/status")
	var date string
	for _, hd := range st[len(st)-1].Headers {
		if hd.Name == hostproto.HeaderDate {
			date = hd.Value
		}
	}
	got, err := time.Parse(hostproto.DateLayout, date)
	if err != nil {
		t.Fatalf("date header %q: %v", date, err)
	}
	if d := got.Sub(r.clk.Now().Add(time.Hour)); d < -3*time.Second || d > 3*time.Second {
		t.Errorf("date header %s is not host time (off by %v)", date, d)
	}
	// No re-sync within 15 minutes; one after.
	h.set(t, hostsim.Patch{ClockOffsetSeconds: ptr(7200)})
	if s2 := r.step(t); s2.HostTimeOffset != s.HostTimeOffset {
		t.Errorf("re-synced after %v", s2.Time.Sub(s.HostTimeSyncedAt))
	}
	var s3 *State
	for s3 = r.Current(); s3.Time.Sub(s.HostTimeSyncedAt) < hostTimeResync; {
		s3 = r.step(t)
	}
	// The fake clock ran ahead of real time by the fake time elapsed, so
	// the new offset is 2h minus that.
	fakeAhead := s3.HostTimeSyncedAt.Sub(s.HostTimeSyncedAt)
	if d := s3.HostTimeOffset - (2*time.Hour - fakeAhead); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("offset after 15 min %v; want about %v", s3.HostTimeOffset, 2*time.Hour-fakeAhead)
	}
}

// TestAcquireErrorHidesBody: an acquisition answered with another status
// than 200 is an error that does not echo the body, which may hold a key.
func TestAcquireErrorHidesBody(t *testing.T) {
	h := startHost(t)
	h.fault(t, hostsim.Fault{Kind: hostsim.FaultHTTP500})
	c := newHostClient(h.Addrs().WireServer, DefaultHostHeader, time.Second, 0)
	_, err := c.acquire(t.Context(), "Mon, 07 Dec 2026 12:00:00 GMT", nil)
	var he *HostError
	if !errors.As(err, &he) || he.Status != 500 || strings.Contains(err.Error(), "injected") {
		t.Errorf("err = %v; want a HostError 500 without the body", err)
	}
}
