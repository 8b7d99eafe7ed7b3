package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGoTest writes a script printing a canned go test -json stream and
// exiting with code.
func fakeGoTest(t *testing.T, stream string, code int) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "stream.json")
	if err := os.WriteFile(data, []byte(stream), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "gotest")
	body := "#!/bin/sh\ncat " + data + "\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

const (
	evPass    = `{"Action":"run","Package":"p","Test":"TestA"}` + "\n" + `{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}` + "\n" + `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n"
	evSub     = `{"Action":"pass","Package":"p","Test":"TestA/sub"}` + "\n"
	evSkip    = `{"Action":"output","Package":"p","Test":"TestS","Output":"    x_test.go:9: needs root\n"}` + "\n" + `{"Action":"skip","Package":"p","Test":"TestS"}` + "\n"
	evFail    = `{"Action":"output","Package":"p","Test":"TestF","Output":"    x_test.go:3: boom\n"}` + "\n" + `{"Action":"fail","Package":"p","Test":"TestF"}` + "\n" + `{"Action":"fail","Package":"p"}` + "\n"
	evPkgOK   = `{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}` + "\n" + `{"Action":"pass","Package":"p"}` + "\n"
	evPkgFail = `{"Action":"output","Package":"q","Output":"panic: x\n"}` + "\n" + `{"Action":"fail","Package":"q"}` + "\n"
)

// TestSummaryCountsAndExitCode: every test and subtest counts once, a
// package failing outside a test counts as a failure, a failed test's
// output and a skip's reason are shown, the last line is exactly
// "N passed, N failed, N skipped", and the exit code follows.
func TestSummaryCountsAndExitCode(t *testing.T) {
	for _, tt := range []struct {
		name       string
		stream     string
		code       int
		failOnSkip bool
		wantLast   string
		wantExit   int
		wantOut    []string
	}{
		{"all pass", evPass + evSub + evPkgOK, 0, true, "2 passed, 0 failed, 0 skipped", 0, []string{"ok  \tp\t0.1s"}},
		{"skip allowed", evPass + evSkip, 0, false, "1 passed, 0 failed, 1 skipped", 0, []string{"SKIPPED: p TestS: x_test.go:9: needs root"}},
		{"skip fails under -fail-on-skip", evPass + evSkip, 0, true, "1 passed, 0 failed, 1 skipped", 1, []string{"a required feature is missing"}},
		{"test failure", evPass + evFail, 1, false, "1 passed, 1 failed, 0 skipped", 1, []string{"x_test.go:3: boom", "FAILED: p TestF"}},
		{"package failure outside tests", evPass + evPkgFail, 1, false, "1 passed, 1 failed, 0 skipped", 1, []string{"panic: x", "FAILED: q (package"}},
		{"command fails without a test event", evPass, 2, false, "1 passed, 0 failed, 0 skipped", 1, []string{"a test command failed"}},
		{"non-JSON lines echoed", "# build error\n" + evPass, 0, false, "1 passed, 0 failed, 0 skipped", 0, []string{"# build error"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-cmd", fakeGoTest(t, tt.stream, tt.code)}
			if tt.failOnSkip {
				args = append([]string{"-fail-on-skip"}, args...)
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			if code != tt.wantExit || last != tt.wantLast {
				t.Errorf("exit %d, summary %q; want %d, %q\n%s%s", code, last, tt.wantExit, tt.wantLast, out.String(), errb.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	// Two commands add up; the count line also lands in -summary-file.
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "summary")
	code := run([]string{"-summary-file", file, "-cmd", fakeGoTest(t, evPass, 0), "-cmd", fakeGoTest(t, evPass+evSub, 0)}, &out, &out)
	if code != 0 || !strings.HasSuffix(out.String(), "\n3 passed, 0 failed, 0 skipped\n") {
		t.Errorf("two runs: exit %d\n%s", code, out.String())
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "3 passed, 0 failed, 0 skipped\n" {
		t.Errorf("summary file %q, %v", b, err)
	}
}
