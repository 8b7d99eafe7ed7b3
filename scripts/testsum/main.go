package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output events
	FailedBuild string
}

// tally accumulates the results of every run.
type tally struct {
	passed, failed, skipped int
	failures                []string // "pkg Test"
	skips                   []string // "pkg Test: reason"
	pkgFailures             []string
	// output of running tests, printed when one fails
	out map[string][]string
	// packages with a failed test (a package fail then needs no extra count)
	pkgHadFail map[string]bool
}

func newTally() *tally {
	return &tally{out: map[string][]string{}, pkgHadFail: map[string]bool{}}
}

// consume reads a go test -json stream, writing the reader's view to w.
// Lines that are not JSON (stderr merged in, build errors of old
// toolchains) are echoed.
func (t *tally) consume(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		t.event(e, w)
	}
	return sc.Err()
}

func (t *tally) event(e event, w io.Writer) {
	key := e.Package + " " + e.Test
	switch e.Action {
	case "build-output":
		fmt.Fprint(w, e.Output)
	case "output":
		if e.Test == "" {
			// package-level lines: "ok  pkg 1.2s", "FAIL pkg", panics
			if s := strings.TrimSpace(e.Output); s != "" && s != "PASS" && s != "FAIL" && !strings.HasPrefix(s, "=== ") && !strings.Contains(s, "no tests to run") {
				fmt.Fprint(w, e.Output)
			}
			return
		}
		t.out[key] = append(t.out[key], e.Output)
	case "pass":
		if e.Test != "" {
			t.passed++
			delete(t.out, key)
		}
	case "skip":
		if e.Test == "" {
			return // a package without tests
		}
		t.skipped++
		reason := skipReason(t.out[key])
		t.skips = append(t.skips, key+": "+reason)
		fmt.Fprintf(w, "--- SKIP: %s: %s\n", key, reason)
		delete(t.out, key)
	case "fail":
		if e.Test == "" {
			if !t.pkgHadFail[e.Package] {
				t.failed++
				t.pkgFailures = append(t.pkgFailures, e.Package)
				t.failures = append(t.failures, e.Package+" (package: build error, panic or timeout)")
			}
			return
		}
		t.failed++
		t.pkgHadFail[e.Package] = true
		t.failures = append(t.failures, key)
		fmt.Fprintf(w, "=== FAIL output: %s\n%s", key, strings.Join(t.out[key], ""))
		delete(t.out, key)
	}
}

// skipReason picks the t.Skip message out of a skipped test's output.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- SKIP") {
			continue
		}
		msg = append(msg, s)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

// summary writes the lists and the final count line.
func (t *tally) summary(w io.Writer) {
	sort.Strings(t.failures)
	for _, f := range t.failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
	for _, s := range t.skips {
		fmt.Fprintf(w, "SKIPPED: %s\n", s)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped)
}

// lockedWriter serializes writes (and, unlike *bytes.Buffer, has no
// ReadFrom that exec's stderr copy could race with).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type cmdList []string

func (c *cmdList) String() string     { return strings.Join(*c, "; ") }
func (c *cmdList) Set(s string) error { *c = append(*c, s); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testsum", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cmds cmdList
	fs.Var(&cmds, "cmd", "a `go test -json` command line, split on white space; repeatable")
	failOnSkip := fs.Bool("fail-on-skip", false, "a skipped test fails the run (CI runs as root, where nothing may skip)")
	summaryFile := fs.String("summary-file", "", "also write the final count line to this `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(cmds) == 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "testsum: want one or more -cmd 'go test -json ...' and no other arguments")
		return 2
	}
	t := newTally()
	// One locked writer for the stream and the command's stderr: both
	// write from their own goroutine.
	out := &lockedWriter{w: stdout}
	cmdFailed := false
	for _, c := range cmds {
		argv := strings.Fields(c)
		fmt.Fprintf(stdout, "== %s\n", c)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = out // build errors and vet findings, in order with the rest
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintf(stderr, "testsum: %s: %v\n", c, err)
			return 2
		}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "testsum: start %s: %v\n", c, err)
			return 2
		}
		if err := t.consume(pipe, out); err != nil {
			fmt.Fprintf(stderr, "testsum: reading %s: %v\n", c, err)
			cmdFailed = true
		}
		if err := cmd.Wait(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				fmt.Fprintf(stderr, "testsum: %s: %v\n", c, err)
			}
			cmdFailed = true
		}
	}
	fmt.Fprintf(stdout, "test flags: TESTFLAGS=%q GOFLAGS=%q (the commands above show what ran)\n", os.Getenv("TESTFLAGS"), os.Getenv("GOFLAGS"))
	code := 0
	switch {
	case t.failed > 0:
		code = 1
	case cmdFailed:
		fmt.Fprintln(stdout, "testsum: a test command failed although no test failed (see its output above)")
		code = 1
	case *failOnSkip && t.skipped > 0:
		fmt.Fprintln(stdout, "testsum: tests were skipped; under CI (root) a skip means a required feature is missing")
		code = 1
	}
	t.summary(stdout)
	if *summaryFile != "" {
		line := fmt.Sprintf("%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped)
		if err := os.WriteFile(*summaryFile, []byte(line), 0o644); err != nil {
			fmt.Fprintf(stderr, "testsum: -summary-file: %v\n", err)
			return 2
		}
	}
	return code
}
