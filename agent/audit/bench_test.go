package audit

import (
	"testing"
)

// BenchmarkRecord is the request path's cost per entry: summary update
// and queue hand-off (the writer runs concurrently; when it lags, entries
// are dropped, which is the path being measured too).
func BenchmarkRecord(b *testing.B) {
	l, err := Open(Options{Dir: b.TempDir(), QueueSize: 1 << 16})
	must(b, err)
	e := sampleEntry()
	e.Decision = DecisionAllow
	b.ReportAllocs()
	for b.Loop() {
		l.Record(e)
	}
	b.StopTimer()
	must(b, l.Close())
	s := l.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(s.Written+s.Dropped), "dropped/op")
}

// BenchmarkWrite is the writer's cost per line: logrus, formatting and the
// buffered, rotating file.
func BenchmarkWrite(b *testing.B) {
	l, err := Open(Options{Dir: b.TempDir()})
	must(b, err)
	e := sampleEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.write(&e)
	}
	b.StopTimer()
	must(b, l.Close())
}

// BenchmarkLine is the formatting alone.
func BenchmarkLine(b *testing.B) {
	e := sampleEntry()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendLine(buf[:0], &e)
	}
}
