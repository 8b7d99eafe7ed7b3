package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mspguest/msp/agent/audit"
)

// LatencyBuckets are the upper bounds, in seconds, of the request latency
// histogram: 100 µs to 10 s.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Label is one label of a sample.
type Label struct{ Name, Value string }

// Sample is one value of a metric a collector reports.
type Sample struct {
	Labels []Label
	Value  float64
}

// Kind is a Prometheus metric type.
type Kind string

// Kinds a collector may report.
const (
	Counter Kind = "counter"
	Gauge   Kind = "gauge"
)

type collector struct {
	name, help string
	kind       Kind
	collect    func() []Sample
}

type requestKey struct {
	endpoint, decision string
	status             int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

// Registry holds the agent's metrics. The zero value is not usable; call
// New. Its methods are safe for concurrent use.
type Registry struct {
	mu         sync.Mutex
	requests   map[requestKey]uint64
	latency    map[string]*histogram
	collectors []collector
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{requests: make(map[requestKey]uint64), latency: make(map[string]*histogram)}
}

// Record counts one finished request; it has the shape of the proxy's audit
// sink so the daemon can hand the same entries to the audit log and here.
func (r *Registry) Record(e *audit.Entry) {
	secs := float64(e.LatencyUs) / 1e6
	i, _ := slices.BinarySearch(LatencyBuckets, secs)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[requestKey{e.Endpoint, e.Decision, e.Status}]++
	h := r.latency[e.Endpoint]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
		r.latency[e.Endpoint] = h
	}
	h.counts[i]++
	h.sum += secs
	h.count++
}

// Collect registers a metric whose samples are read at every scrape.
// name must be a valid metric name; it panics otherwise (a programming
// error, found by the daemon's tests).
func (r *Registry) Collect(name, help string, kind Kind, f func() []Sample) {
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, collector{name, help, kind, f})
}

// Age returns a collector function reporting the seconds since t(), or no
// sample while t() is zero: e.g. the age of the latched key.
func Age(t func() time.Time, now func() time.Time) func() []Sample {
	return func() []Sample {
		at := t()
		if at.IsZero() {
			return nil
		}
		return []Sample{{Value: now().Sub(at).Seconds()}}
	}
}

// WriteTo writes every metric in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriter(w)}
	r.mu.Lock()
	reqs := make([]requestKey, 0, len(r.requests))
	for k := range r.requests {
		reqs = append(reqs, k)
	}
	slices.SortFunc(reqs, func(a, b requestKey) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	header(cw, "msp_requests_total", "Requests the proxy finished, by endpoint, decision and HTTP status.", Counter)
	for _, k := range reqs {
		fmt.Fprintf(cw, "msp_requests_total{endpoint=%s,decision=%s,status=\"%d\"} %d\n",
			quote(k.endpoint), quote(k.decision), k.status, r.requests[k])
	}
	eps := make([]string, 0, len(r.latency))
	for ep := range r.latency {
		eps = append(eps, ep)
	}
	slices.Sort(eps)
	header(cw, "msp_request_duration_seconds", "Time from the request head to the end of the response, by endpoint.", "histogram")
	for _, ep := range eps {
		h := r.latency[ep]
		var cum uint64
		for i, le := range LatencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(cw, "msp_request_duration_seconds_bucket{endpoint=%s,le=\"%s\"} %d\n", quote(ep), formatFloat(le), cum)
		}
		fmt.Fprintf(cw, "msp_request_duration_seconds_bucket{endpoint=%s,le=\"+Inf\"} %d\n", quote(ep), h.count)
		fmt.Fprintf(cw, "msp_request_duration_seconds_sum{endpoint=%s} %s\n", quote(ep), formatFloat(h.sum))
		fmt.Fprintf(cw, "msp_request_duration_seconds_count{endpoint=%s} %d\n", quote(ep), h.count)
	}
	collectors := slices.Clone(r.collectors)
	r.mu.Unlock()

	for _, c := range collectors {
		header(cw, c.name, c.help, c.kind)
		for _, s := range c.collect() {
			cw.WriteString(c.name)
			if len(s.Labels) > 0 {
				cw.WriteString("{")
				for i, l := range s.Labels {
					if i > 0 {
						cw.WriteString(",")
					}
					cw.WriteString(l.Name + "=" + quote(l.Value))
				}
				cw.WriteString("}")
			}
			cw.WriteString(" " + formatFloat(s.Value) + "\n")
		}
	}
	if err := cw.w.Flush(); err != nil && cw.err == nil {
		cw.err = err
	}
	return cw.n, cw.err
}

func header(w io.StringWriter, name, help string, kind Kind) {
	_, _ = w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n# TYPE " + name + " " + string(kind) + "\n")
}

// quote writes a label value: backslash, double quote and line feed escaped.
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

func escapeHelp(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(v)
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (i > 0 && '0' <= c && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countingWriter) WriteString(s string) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.WriteString(s)
	c.n += int64(n)
	c.err = err
	return n, err
}
