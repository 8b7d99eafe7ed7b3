package audit

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestSummariesBucketsAndExpiry(t *testing.T) {
	s := newSummaries()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	curl := sampleEntry()
	curl.Decision, curl.Status = DecisionAllow, 200
	denied := curl
	denied.Decision, denied.Status = DecisionDeny, 403
	wouldDeny := curl
	wouldDeny.Decision = DecisionAuditDeny
	rejected := curl
	rejected.Decision, rejected.Status = DecisionRejected, 502
	other := curl
	other.Caller.CmdLine = "curl other"

	add := func(e Entry, at time.Time, n int) {
		for range n {
			s.add(&e, at)
		}
	}
	add(curl, t0, 3)
	add(curl, t0.Add(20*time.Minute), 2) // next bucket, same key
	add(denied, t0.Add(5*time.Minute), 1)
	add(wouldDeny, t0.Add(16*time.Minute), 4)
	add(rejected, t0.Add(30*time.Minute), 1)
	add(other, t0.Add(3*time.Hour+50*time.Minute), 1)

	type item struct {
		cmdline, status string
		count           uint64
	}
	summarize := func(list []Summary) []item {
		var out []item
		for _, s := range list {
			out = append(out, item{s.ProcessCmdLine, s.ResponseStatus, s.Count})
		}
		return out
	}
	tests := []struct {
		name      string
		at        time.Time
		forwarded []item
		failed    []item
	}{
		{name: "AllWithin4h", at: t0.Add(3*time.Hour + 59*time.Minute),
			forwarded: []item{{curl.Caller.CmdLine, "200 OK", 9}, {curl.Caller.CmdLine, "502 Bad Gateway", 1}, {"curl other", "200 OK", 1}},
			failed:    []item{{curl.Caller.CmdLine, "200 OK", 4}, {curl.Caller.CmdLine, "403 Forbidden", 1}}},
		{name: "FirstBucketExpired", at: t0.Add(4*time.Hour + time.Minute),
			forwarded: []item{{curl.Caller.CmdLine, "200 OK", 6}, {curl.Caller.CmdLine, "502 Bad Gateway", 1}, {"curl other", "200 OK", 1}},
			failed:    []item{{curl.Caller.CmdLine, "200 OK", 4}}},
		{name: "OnlyTheLast", at: t0.Add(7*time.Hour + 44*time.Minute),
			forwarded: []item{{"curl other", "200 OK", 1}}},
		{name: "AllExpired", at: t0.Add(8 * time.Hour)},
	}
	for _, tt := range tests {
		got := s.snapshot(tt.at)
		if f := summarize(got.ProxyConnectionSummary); !slices.Equal(f, tt.forwarded) {
			t.Errorf("%s: proxyConnectionSummary %v; want %v", tt.name, f, tt.forwarded)
		}
		if f := summarize(got.FailedAuthenticateSummary); !slices.Equal(f, tt.failed) {
			t.Errorf("%s: failedAuthenticateSummary %v; want %v", tt.name, f, tt.failed)
		}
	}
}

func TestSummariesReuseASlotAfterFourHours(t *testing.T) {
	s := newSummaries()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	e := sampleEntry()
	e.Decision = DecisionAllow
	s.add(&e, t0)
	s.add(&e, t0.Add(4*time.Hour)) // same ring slot, 16 buckets later
	if got := s.snapshot(t0.Add(4 * time.Hour)).ProxyConnectionSummary; len(got) != 1 || got[0].Count != 1 {
		t.Errorf("summary %+v; want the old bucket replaced (count 1)", got)
	}
}

func TestSummaryKeyIncludesClientIP(t *testing.T) {
	s := newSummaries()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := sampleEntry()
	a.Decision = DecisionAllow
	b := a
	b.Client = netip.MustParseAddrPort("127.0.0.2:40000")
	c := a
	c.Client = netip.MustParseAddrPort("127.0.0.1:40001") // only the port differs
	for _, e := range []Entry{a, b, c} {
		s.add(&e, now)
	}
	if got := s.snapshot(now).ProxyConnectionSummary; len(got) != 2 {
		t.Errorf("%d items; want 2 (client ip, not port, is in the key)", len(got))
	}
}

func TestSummariesBounded(t *testing.T) {
	s := newSummaries()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	e := sampleEntry()
	e.Decision = DecisionDeny
	for i := range maxKeysPerBucket + 7 {
		e.Caller.CmdLine = "cmd " + string(rune('a'+i%26)) + string(rune(i))
		s.add(&e, now)
	}
	if got := s.snapshot(now).FailedAuthenticateSummary; len(got) != maxKeysPerBucket {
		t.Errorf("%d keys; want the bound %d", len(got), maxKeysPerBucket)
	}
	if got := s.overflow.Load(); got != 7 {
		t.Errorf("overflow %d; want 7", got)
	}
}

// TestSummariesJSONShape pins the item shape of agent.md §9.
func TestSummariesJSONShape(t *testing.T) {
	s := newSummaries()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	empty, err := json.Marshal(s.snapshot(now))
	must(t, err)
	if string(empty) != `{"proxyConnectionSummary":[],"failedAuthenticateSummary":[]}` {
		t.Errorf("empty summaries %s; want two empty arrays", empty)
	}
	e := sampleEntry()
	e.Decision, e.Status = DecisionAllow, 200
	e.Caller.Groups = []string{"root"}
	s.add(&e, now)
	raw, err := json.Marshal(s.snapshot(now).ProxyConnectionSummary[0])
	must(t, err)
	var got map[string]any
	must(t, json.Unmarshal(raw, &got))
	want := map[string]any{"userName": "alice", "userGroups": []any{"root"}, "ip": "169.254.169.254", "port": 80.0,
		"processFullPath": "/usr/bin/curl", "processCmdLine": e.Caller.CmdLine, "responseStatus": "200 OK", "count": 1.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("item %s;\nwant %v", raw, want)
	}
}

func TestLogSummariesUseTheClock(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	l, err := Open(Options{Dir: t.TempDir(), Now: func() time.Time { return now }})
	must(t, err)
	defer l.Close()
	e := sampleEntry()
	e.Decision, e.Time = DecisionDeny, time.Time{}
	l.Record(e)
	if got := l.Summaries().FailedAuthenticateSummary; len(got) != 1 {
		t.Fatalf("failed summary %+v; want one item", got)
	}
	now = now.Add(4 * time.Hour)
	if got := l.Summaries().FailedAuthenticateSummary; len(got) != 0 {
		t.Errorf("failed summary after 4 h %+v; want none", got)
	}
}
