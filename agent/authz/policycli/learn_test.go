package policycli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpus is the week of audit log shipped with the learn package: days
// 1–5 in the rotated .gz files, days 6–7 (with an unexpected curl) in
// audit.jsonl.
const corpus = "../learn/testdata/audit/"

func TestSuggestThenImpact(t *testing.T) {
	out := filepath.Join(t.TempDir(), "imds.json")
	code, stdout, stderr := run(t, "", "suggest", "--audit", corpus+"audit.jsonl.2.gz", corpus+"audit.jsonl.1.gz",
		"--endpoint", "imds", "--out", out)
	if code != ExitOK || stdout != "" || !strings.Contains(stderr, "learnt 935 imds requests") {
		t.Fatalf("suggest: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := run(t, "", "validate", out); code != ExitOK {
		t.Fatalf("the suggestion does not validate: %s", stdout)
	}
	// Replaying the days it was learnt from breaks nothing ...
	code, stdout, _ = run(t, "", "impact", "--rules", out, "--audit", corpus+"audit.jsonl.2.gz", "--audit", corpus+"audit.jsonl.1.gz")
	if code != ExitOK || !strings.Contains(stdout, "0 of them forwarded when recorded") {
		t.Errorf("impact on the training days: exit %d\n%s", code, stdout)
	}
	// ... the held-out days break only alice's curl.
	code, stdout, _ = run(t, "", "impact", "--rules", out, "--audit", corpus+"audit.jsonl", "--json")
	if code != ExitDenied {
		t.Fatalf("impact on the held-out days: exit %d; want 3\n%s", code, stdout)
	}
	var imp struct {
		Breaks  int `json:"breaks"`
		Callers []struct {
			User     string `json:"user"`
			Breaks   int    `json:"breaks"`
			Examples []struct {
				Target, Reason string
			} `json:"examples"`
		} `json:"callers"`
	}
	if err := json.Unmarshal([]byte(stdout), &imp); err != nil {
		t.Fatal(err)
	}
	if imp.Breaks != 4 {
		t.Errorf("breaks %d; want 4", imp.Breaks)
	}
	for _, c := range imp.Callers {
		if c.Breaks > 0 && c.User != "alice" {
			t.Errorf("caller %s would break", c.User)
		}
		if c.User == "alice" && (len(c.Examples) == 0 || c.Examples[0].Reason != "default-deny") {
			t.Errorf("alice's examples %+v; want the denied token fetch with its reason", c.Examples)
		}
	}
}

func TestSuggestStdoutAndWireServer(t *testing.T) {
	code, stdout, stderr := run(t, "", "suggest", "--endpoint", "wireserver", "--mode", "none", corpus+"audit.jsonl")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, `"mode"`) {
		t.Error("--mode none must leave the mode out (follow the host)")
	}
	if !strings.Contains(stdout, `"path": "/machine"`) || !strings.Contains(stdout, `"userName": "root"`) {
		t.Errorf("wireserver suggestion:\n%s", stdout)
	}
}

func TestLearnBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.jsonl")
	if err := os.WriteFile(garbage, []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"suggest without audit", []string{"suggest"}, ExitBad, "--audit: missing"},
		{"suggest hostga", []string{"suggest", "--endpoint", "hostga", garbage}, ExitBad, "use wireserver"},
		{"suggest bad by", []string{"suggest", "--by", "uid", garbage}, ExitBad, "want user, group, exe or user+exe"},
		{"suggest bad default", []string{"suggest", "--default", "maybe", garbage}, ExitBad, "want deny or allow"},
		{"suggest bad mode", []string{"suggest", "--mode", "strict", garbage}, ExitBad, "want enforce, audit or none"},
		{"suggest bad min-count", []string{"suggest", "--min-count", "0", garbage}, ExitBad, "want 1 or more"},
		{"suggest missing file", []string{"suggest", filepath.Join(dir, "none.jsonl")}, ExitBad, "no such file"},
		{"suggest skips bad lines", []string{"suggest", garbage}, ExitOK, "garbage.jsonl:1: skipped"},
		{"impact without rules", []string{"impact", garbage}, ExitBad, "--rules: missing"},
		{"impact bad rules", []string{"impact", "--rules", garbage, garbage}, ExitBad, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, "", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}
