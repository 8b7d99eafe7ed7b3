package learn

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/mspguest/msp/agent/audit"
)

// Record is one audit line and where it came from.
type Record struct {
	audit.Entry
	Source string // "file:line"
}

// maxLine bounds one audit line; the agent writes a few hundred bytes.
const maxLine = 1 << 20

// ReadFiles reads audit logs: audit.jsonl and its rotated files, gzip
// compressed or not (recognised by content, not by name). A line that is
// not an audit entry is reported in warnings and skipped, so a log cut off
// mid-line by a crash still teaches everything before the cut.
func ReadFiles(paths ...string) (recs []Record, warnings []string, err error) {
	for _, p := range paths {
		r, w, err := readFile(p)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r...)
		warnings = append(warnings, w...)
	}
	return recs, warnings, nil
}

func readFile(path string) ([]Record, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("audit log %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	return readLines(r, path)
}

func readLines(r io.Reader, name string) ([]Record, []string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var recs []Record
	var warnings []string
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		src := fmt.Sprintf("%s:%d", name, n)
		var e audit.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: skipped, not an audit entry: %v", src, err))
			continue
		}
		if e.Endpoint == "" && e.Target != "" && e.Decision != "" {
			// The listener's own endpoints (/provision,
			// /gpa-aggregated-status): no metadata service, nothing to learn.
			continue
		}
		if e.Endpoint == "" || e.Method == "" || e.Target == "" || e.Decision == "" {
			warnings = append(warnings, fmt.Sprintf("%s: skipped, want endpoint, method, target and decision", src))
			continue
		}
		recs = append(recs, Record{Entry: e, Source: src})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("audit log %s: %w", name, err)
	}
	return recs, warnings, nil
}
