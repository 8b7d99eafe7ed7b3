package metrics

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mspguest/msp/agent/audit"
)

// parse reads the exposition with Prometheus' own parser, so a format
// mistake fails here and not in a scraper on a VM.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the exposition: %v\n%s", err, text)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string)
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestRequestsAndLatency(t *testing.T) {
	r := New()
	for _, e := range []audit.Entry{
		{Endpoint: "imds", Decision: audit.DecisionAllow, Status: 200, LatencyUs: 80},
		{Endpoint: "imds", Decision: audit.DecisionAllow, Status: 200, LatencyUs: 400},
		{Endpoint: "imds", Decision: audit.DecisionDeny, Status: 403, LatencyUs: 20},
		{Endpoint: "wireserver", Decision: audit.DecisionAllow, Status: 200, LatencyUs: 20_000_000},
	} {
		r.Record(&e)
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, buf.Bytes())
	reqs := fams["msp_requests_total"]
	if reqs.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("msp_requests_total type %v", reqs.GetType())
	}
	got := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		l := labels(m)
		got[l["endpoint"]+" "+l["decision"]+" "+l["status"]] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"imds allow 200": 2, "imds deny 403": 1, "wireserver allow 200": 1}
	if len(got) != len(want) {
		t.Errorf("requests %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("requests[%s] = %v; want %v", k, got[k], v)
		}
	}
	lat := fams["msp_request_duration_seconds"]
	if lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("latency type %v", lat.GetType())
	}
	for _, m := range lat.GetMetric() {
		h := m.GetHistogram()
		switch labels(m)["endpoint"] {
		case "imds":
			if h.GetSampleCount() != 3 {
				t.Errorf("imds count %d; want 3", h.GetSampleCount())
			}
			// 20 µs and 80 µs fall in the first bucket (≤ 100 µs), 400 µs
			// in ≤ 500 µs; buckets are cumulative.
			for _, b := range h.GetBucket() {
				switch b.GetUpperBound() {
				case 0.0001:
					if b.GetCumulativeCount() != 2 {
						t.Errorf("le=0.0001: %d; want 2", b.GetCumulativeCount())
					}
				case 0.0005:
					if b.GetCumulativeCount() != 3 {
						t.Errorf("le=0.0005: %d; want 3", b.GetCumulativeCount())
					}
				}
			}
		case "wireserver":
			// 20 s is beyond the last bucket: only +Inf (the count) has it.
			for _, b := range h.GetBucket() {
				if !math.IsInf(b.GetUpperBound(), 1) && b.GetCumulativeCount() != 0 {
					t.Errorf("wireserver le=%v: %d; want 0", b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 20 {
				t.Errorf("wireserver count %d sum %v; want 1 and 20", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
}

func TestCollectorsAndEscaping(t *testing.T) {
	r := New()
	now := time.Unix(1000, 0)
	latched := time.Unix(900, 0)
	r.Collect("msp_key_age_seconds", "Seconds since the signing key was latched.", Gauge,
		Age(func() time.Time { return latched }, func() time.Time { return now }))
	r.Collect("msp_redirect_total", "eBPF redirect counters.", Counter, func() []Sample {
		return []Sample{{Labels: []Label{{"event", `odd "value"` + "\n\\"}}, Value: 7}}
	})
	r.Collect("msp_unset_seconds", "A gauge with no sample yet.", Gauge,
		Age(func() time.Time { return time.Time{} }, time.Now))
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, buf.Bytes())
	if v := fams["msp_key_age_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 100 {
		t.Errorf("key age %v; want 100", v)
	}
	m := fams["msp_redirect_total"].GetMetric()[0]
	if got := labels(m)["event"]; got != `odd "value"`+"\n\\" {
		t.Errorf("label round trip %q", got)
	}
	if n := len(fams["msp_unset_seconds"].GetMetric()); n != 0 {
		t.Errorf("unset age has %d samples; want none", n)
	}
}

func TestCollectRejectsBadName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Collect accepted the name \"msp-bad\"")
		}
	}()
	New().Collect("msp-bad", "", Gauge, nil)
}

func TestConcurrentRecordAndScrape(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				r.Record(&audit.Entry{Endpoint: "imds", Decision: "allow", Status: 200 + i, LatencyUs: int64(j)})
			}
		}()
	}
	for range 20 {
		var buf bytes.Buffer
		_, _ = r.WriteTo(&buf)
		parse(t, buf.Bytes())
	}
	wg.Wait()
}

func TestSocketIsRootOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "metrics.sock")
	r := New()
	r.Record(&audit.Entry{Endpoint: "imds", Decision: "allow", Status: 200, LatencyUs: 50})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, r) }()
	deadline := time.Now().Add(5 * time.Second)
	var body []byte
	var err error
	for time.Now().Before(deadline) {
		if body, err = Fetch(context.Background(), sock); err == nil {
			break
		}
		select {
		case serr := <-done:
			t.Fatalf("Serve returned early: %v", serr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `msp_requests_total{endpoint="imds",decision="allow",status="200"} 1`) {
		t.Errorf("fetched:\n%s", body)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %o; want 0600", fi.Mode().Perm())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("socket left behind after Serve returned")
	}

	open := t.TempDir()
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Serve(context.Background(), filepath.Join(open, "metrics.sock"), r); err == nil || !strings.Contains(err.Error(), "chmod 0700") {
		t.Errorf("Serve in a 0755 directory: %v; want a refusal naming the fix", err)
	}
}

func TestMain(t *testing.T) {
	var out, errb bytes.Buffer
	missing := filepath.Join(t.TempDir(), "none.sock")
	if code := Main([]string{"--socket", missing}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is msp-agent running?") {
		t.Errorf("no agent: exit %d, stderr %q; want 1 and a hint", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d; want 2", code)
	}
}
