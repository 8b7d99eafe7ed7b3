package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, 2, "", "usage: mspctl"},
		{"help", []string{"help"}, 0, "Commands:", ""},
		{"unknown", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"sign reaches signcli", []string{"sign"}, 2, "", "--key is required"},
		{"policy reaches policycli", []string{"policy", "validate", "/nonexistent/policy.json"}, 2, "", "policy.json"},
		{"metrics reaches metrics", []string{"metrics", "--socket", "/nonexistent/metrics.sock"}, 1, "", "is msp-agent running?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, strings.NewReader(""), &out, &errb)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
