package benchproxy

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Report is the outcome of `msp-bench compare`, written as bench.json.
type Report struct {
	Machine   Machine              `json:"machine"`
	Options   CompareOptions       `json:"options"`
	Workloads []*Workload          `json:"workloads"`
	Proxies   map[string]ProxyCost `json:"proxies"` // agent, nginx
	Goals     []Goal               `json:"goals"`
	// NginxSetup says what the nginx baseline is.
	NginxSetup string `json:"nginxSetup"`
}

// Workload is one workload's figures per target.
type Workload struct {
	Name    string              `json:"name"` // seq, conc, newconn
	Title   string              `json:"title"`
	Targets map[string]*Figures `json:"targets"` // direct, agent, nginx

	latencies map[string][]time.Duration // sorted, for the chart
}

// Figures are one target's latency percentiles and throughput.
type Figures struct {
	Requests          int     `json:"requests"`
	P50Us             float64 `json:"p50Us"`
	P99Us             float64 `json:"p99Us"`
	RequestsPerSecond float64 `json:"requestsPerSecond"` // median over rounds
	// QuantilesUs are the latencies at quantilePoints (percent).
	QuantilesUs []float64 `json:"quantilesUs"`
}

var quantilePoints = []float64{1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9}

// ProxyCost is a proxy's CPU and memory, read from /proc (all of
// nginx's processes summed).
type ProxyCost struct {
	// CPUPerRequestUs is user+system CPU over the concurrent phase per
	// completed request (median over rounds).
	CPUPerRequestUs float64 `json:"cpuPerRequestUs"`
	IdleRSSKiB      int     `json:"idleRssKiB"` // after start and warm-up
	RSSKiB          int     `json:"rssKiB"`     // after every round
	Processes       int     `json:"processes"`
}

// Goal is one of issue 12's comparisons against nginx.
type Goal struct {
	Name  string  `json:"name"`
	Agent float64 `json:"agent"`
	Nginx float64 `json:"nginx"`
	Unit  string  `json:"unit"`
	// Ratio is Agent/Nginx; Limit the bound on it (at most, or at
	// least when AtLeast).
	Ratio   float64 `json:"ratio"`
	Limit   float64 `json:"limit"`
	AtLeast bool    `json:"atLeast"`
	Met     bool    `json:"met"`
}

func newReport(o CompareOptions) *Report {
	r := &Report{Options: o, Proxies: map[string]ProxyCost{},
		NginxSetup: "nginx-light, worker_processes auto, upstream keepalive 64, keepalive_requests unlimited both sides, proxy_http_version 1.1, one added header, access_log off"}
	for _, w := range []string{workSeq, workConc, workNewConn} {
		title := workTitle[w]
		if w == workConc {
			title = fmt.Sprintf("%d concurrent keep-alive clients", o.Clients)
		}
		r.Workloads = append(r.Workloads, &Workload{Name: w, Title: title, Targets: map[string]*Figures{}, latencies: map[string][]time.Duration{}})
	}
	return r
}

func figuresOf(sorted []time.Duration, rps float64) *Figures {
	f := &Figures{Requests: len(sorted), P50Us: us(pct(sorted, 50)), P99Us: us(pct(sorted, 99)), RequestsPerSecond: rps}
	for _, q := range quantilePoints {
		f.QuantilesUs = append(f.QuantilesUs, us(pct(sorted, q)))
	}
	return f
}

func (r *Report) workload(name string) *Workload {
	for _, w := range r.Workloads {
		if w.Name == name {
			return w
		}
	}
	return &Workload{Targets: map[string]*Figures{}}
}

func (w *Workload) fig(target string) Figures {
	if f := w.Targets[target]; f != nil {
		return *f
	}
	return Figures{}
}

// evaluate fills Goals from the figures (issue 12 item 2).
func (r *Report) evaluate() {
	seq, conc := r.workload(workSeq), r.workload(workConc)
	direct := seq.fig(targetDirect).P50Us
	add := func(g Goal) {
		if g.Nginx != 0 { // else 0: JSON has no infinity
			g.Ratio = g.Agent / g.Nginx
		}
		if g.AtLeast {
			g.Met = g.Agent >= g.Limit*g.Nginx
		} else {
			g.Met = g.Agent <= g.Limit*g.Nginx
		}
		r.Goals = append(r.Goals, g)
	}
	r.Goals = nil
	add(Goal{Name: "added p50, sequential keep-alive", Unit: "µs",
		Agent: seq.fig(targetAgent).P50Us - direct, Nginx: seq.fig(targetNginx).P50Us - direct, Limit: 0.6})
	add(Goal{Name: fmt.Sprintf("requests/s, %d clients", r.Options.Clients), Unit: "req/s",
		Agent: conc.fig(targetAgent).RequestsPerSecond, Nginx: conc.fig(targetNginx).RequestsPerSecond, Limit: 1, AtLeast: true})
	add(Goal{Name: "proxy CPU per request", Unit: "µs",
		Agent: r.Proxies[targetAgent].CPUPerRequestUs, Nginx: r.Proxies[targetNginx].CPUPerRequestUs, Limit: 0.7})
}

// PrintTable writes the comparison and the goals.
func (r *Report) PrintTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %s, %d CPUs, kernel %s, %s, nginx %s\n", m.CPU, m.CPUs, m.Kernel, m.Go, m.Nginx)
	fmt.Fprintf(w, "run: %d interleaved rounds; per round and target %d sequential, %d new-connection requests, %d clients for %s\n",
		r.Options.Rounds, r.Options.Seq, r.Options.NewConn, r.Options.Clients, r.Options.Dur)
	fmt.Fprintf(w, "nginx: %s\n\n", r.NginxSetup)
	head := func(cols ...string) {
		fmt.Fprintf(w, "| %-44s | %10s | %10s | %10s | %12s | %11s |\n", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
		fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 14), strings.Repeat("-", 13))
	}
	row := func(name string, d, a, n float64, unit string, prec int) {
		cell := func(v float64) string {
			if math.IsNaN(v) {
				return ""
			}
			return fmt.Sprintf("%.*f%s", prec, v, unit)
		}
		rat := func(x, y float64) string {
			if math.IsNaN(x) || math.IsNaN(y) || y == 0 {
				return ""
			}
			return fmt.Sprintf("%.2f", x/y)
		}
		fmt.Fprintf(w, "| %-44s | %10s | %10s | %10s | %12s | %11s |\n", name, cell(d), cell(a), cell(n), rat(a, d), rat(a, n))
	}
	head("measure", "direct", "agent", "nginx", "agent/direct", "agent/nginx")
	for _, wl := range r.Workloads {
		d, a, n := wl.fig(targetDirect), wl.fig(targetAgent), wl.fig(targetNginx)
		row(wl.Title+", p50", d.P50Us, a.P50Us, n.P50Us, "µs", 1)
		row(wl.Title+", p99", d.P99Us, a.P99Us, n.P99Us, "µs", 1)
		row(wl.Title+", requests/s", d.RequestsPerSecond, a.RequestsPerSecond, n.RequestsPerSecond, "", 0)
	}
	pa, pn := r.Proxies[targetAgent], r.Proxies[targetNginx]
	nan := math.NaN()
	row(fmt.Sprintf("proxy CPU per request (%d clients)", r.Options.Clients), nan, pa.CPUPerRequestUs, pn.CPUPerRequestUs, "µs", 1)
	row("proxy RSS at start", nan, float64(pa.IdleRSSKiB)/1024, float64(pn.IdleRSSKiB)/1024, "MiB", 1)
	row("proxy RSS after the rounds", nan, float64(pa.RSSKiB)/1024, float64(pn.RSSKiB)/1024, "MiB", 1)
	fmt.Fprintf(w, "(nginx: %d processes, CPU and RSS summed; agent: one process)\n\n", pn.Processes)

	fmt.Fprintf(w, "| %-40s | %12s | %12s | %7s | %-12s | %-6s |\n", "goal", "agent", "nginx", "ratio", "want", "")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 42), strings.Repeat("-", 14), strings.Repeat("-", 14), strings.Repeat("-", 9), strings.Repeat("-", 14), strings.Repeat("-", 8))
	for _, g := range r.Goals {
		want := fmt.Sprintf("≤ %.1f× nginx", g.Limit)
		if g.AtLeast {
			want = fmt.Sprintf("≥ %.1f× nginx", g.Limit)
		}
		met := "met"
		if !g.Met {
			met = "MISSED"
		}
		prec := 1
		if g.Unit == "req/s" {
			prec = 0
		}
		fmt.Fprintf(w, "| %-40s | %12s | %12s | %7.2f | %-12s | %-6s |\n", g.Name,
			fmt.Sprintf("%.*f%s", prec, g.Agent, unitSuffix(g.Unit)), fmt.Sprintf("%.*f%s", prec, g.Nginx, unitSuffix(g.Unit)), g.Ratio, want, met)
	}
}

func unitSuffix(u string) string {
	if u == "req/s" {
		return ""
	}
	return u
}

// Chart geometry.
const (
	panelW, panelH   = 420, 300
	marginL, marginB = 55, 45
	marginT, marginR = 30, 15
)

var targetColour = map[string]string{targetDirect: "#777777", targetAgent: "#1f77b4", targetNginx: "#2ca02c"}

// SVG draws each workload's latency distribution (CDF, log-scale
// latency) per target, one panel per workload.
func (r *Report) SVG() []byte {
	var b bytes.Buffer
	width := panelW * len(r.Workloads)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, panelH+30)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, panelH+30)
	for i, wl := range r.Workloads {
		r.panel(&b, wl, float64(i*panelW))
	}
	// Legend.
	x := 10.0
	for _, t := range targets {
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="2"/>`, x, panelH+18, x+20, panelH+18, targetColour[t])
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text>`+"\n", x+25, panelH+22, t)
		x += 90
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (r *Report) panel(b *bytes.Buffer, wl *Workload, x0 float64) {
	lo, hi := math.Inf(1), 0.0
	for _, t := range targets {
		l := wl.latencies[t]
		if len(l) == 0 {
			continue
		}
		lo = math.Min(lo, us(l[0]))
		hi = math.Max(hi, us(pct(l, 99.9)))
	}
	if hi <= 0 || math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1))))
	hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, lo*10))))
	pw, ph := float64(panelW-marginL-marginR), float64(panelH-marginT-marginB)
	px := func(v float64) float64 {
		return x0 + marginL + pw*(math.Log10(math.Max(v, lo))-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	py := func(q float64) float64 { return marginT + ph*(1-q) }
	fmt.Fprintf(b, `<text x="%.0f" y="18" font-size="13" font-weight="bold">%s</text>`+"\n", x0+marginL, escapeXML(wl.Title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#000"/>`+"\n", x0+marginL, marginT, pw, ph)
	for d := lo; d <= hi*1.0001; d *= 10 {
		xx := px(d)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#ddd"/>`, xx, marginT, xx, marginT+ph)
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", xx, marginT+ph+14, durLabel(d))
	}
	for _, q := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`, x0+marginL, py(q), x0+marginL+pw, py(q))
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", x0+marginL-4, py(q)+4, q)
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%d" text-anchor="middle">latency (log scale)</text>`+"\n", x0+marginL+pw/2, panelH-12)
	fmt.Fprintf(b, `<text transform="translate(%.0f,%.0f) rotate(-90)" text-anchor="middle">fraction of requests</text>`+"\n", x0+14, marginT+ph/2)
	for _, t := range targets {
		l := wl.latencies[t]
		if len(l) == 0 {
			continue
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" data-target="%s" points="`, targetColour[t], t)
		const steps = 200
		for i := 0; i <= steps; i++ {
			q := float64(i) / steps
			v := us(l[int(q*float64(len(l)-1))])
			fmt.Fprintf(b, "%.1f,%.1f ", px(v), py(q))
		}
		b.WriteString("\"/>\n")
	}
}

func durLabel(usec float64) string {
	switch {
	case usec >= 1e6:
		return fmt.Sprintf("%gs", usec/1e6)
	case usec >= 1e3:
		return fmt.Sprintf("%gms", usec/1e3)
	}
	return fmt.Sprintf("%gµs", usec)
}

func escapeXML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
