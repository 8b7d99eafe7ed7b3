package policycli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mspguest/msp/agent/authz/learn"
	"github.com/mspguest/msp/agent/hostproto"
)

// files is a repeatable flag; the positional arguments are added to it, so
// `--audit /var/log/msp-agent/audit.jsonl*` works after shell expansion.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// learnEndpoint reads --endpoint for suggest and impact: imds or
// wireserver (whose item HostGAPlugin follows).
func learnEndpoint(s string) (hostproto.Endpoint, error) {
	ep, err := hostproto.ParseEndpoint(s)
	switch {
	case err != nil:
		return 0, err
	case ep == hostproto.HostGAPlugin:
		return 0, fmt.Errorf("endpoint %q: hostga follows wireserver's item: use wireserver", s)
	}
	return ep, nil
}

// readAudit reads the audit files, printing skipped lines as warnings.
func (c *cli) readAudit(cmd string, paths []string) ([]learn.Record, bool) {
	if len(paths) == 0 {
		fmt.Fprintf(c.stderr, "mspctl policy %s: --audit: missing: give the audit log, e.g. --audit /var/log/msp-agent/audit.jsonl*\n", cmd)
		return nil, false
	}
	recs, warnings, err := learn.ReadFiles(paths...)
	if err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy %s: %v\n", cmd, err)
		return nil, false
	}
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	return recs, true
}

func (c *cli) suggest(args []string) int {
	fs := c.flags("suggest")
	var audits files
	fs.Var(&audits, "audit", "audit log `FILE` (audit.jsonl or a rotated .gz); repeatable")
	var (
		endpoint = fs.String("endpoint", "imds", "imds or wireserver (wireserver also learns from hostga records)")
		def      = fs.String("default", "deny", "defaultAccess of the suggestion: deny or allow")
		by       = fs.String("by", string(learn.ByUserExe), "identity selectors: user, group, exe or user+exe")
		minCount = fs.Int("min-count", 1, "leave out a caller's path seen fewer than `N` times")
		mode     = fs.String("mode", "enforce", "mode of the suggestion: enforce, audit, or none (follow the host)")
		out      = fs.String("out", "", "write the policy to `FILE` instead of standard output")
	)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitBad
	}
	audits = append(audits, rest...)
	var problems []string
	ep, err := learnEndpoint(*endpoint)
	if err != nil {
		problems = append(problems, "--"+err.Error())
	}
	b, err := learn.ParseBy(*by)
	if err != nil {
		problems = append(problems, err.Error())
	}
	switch *mode {
	case "enforce", "audit":
	case "none":
		*mode = ""
	default:
		problems = append(problems, fmt.Sprintf("--mode %q: want enforce, audit or none", *mode))
	}
	if *minCount < 1 {
		problems = append(problems, fmt.Sprintf("--min-count %d: want 1 or more", *minCount))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(c.stderr, "mspctl policy suggest: %s\n", p)
		}
		return ExitBad
	}
	recs, ok := c.readAudit("suggest", audits)
	if !ok {
		return ExitBad
	}
	s, err := learn.Suggest(recs, learn.Options{Endpoint: ep, DefaultAccess: *def, By: b, MinCount: *minCount, Mode: *mode})
	if err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy suggest: %v\n", err)
		return ExitBad
	}
	data, err := json.MarshalIndent(s.Item, "", "  ")
	if err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy suggest: %v\n", err)
		return ExitBad
	}
	data = append(data, '\n')
	if *out == "" {
		_, _ = c.stdout.Write(data)
	} else if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy suggest: %v\n", err)
		return ExitBad
	}
	fmt.Fprintf(c.stderr, "learnt %d %s requests (%s .. %s)\n", s.Learnt, ep, s.From.UTC().Format("2006-01-02T15:04:05Z"), s.To.UTC().Format("2006-01-02T15:04:05Z"))
	for _, n := range s.Notes {
		fmt.Fprintf(c.stderr, "note: %s\n", n)
	}
	return ExitOK
}

func (c *cli) impact(args []string) int {
	fs := c.flags("impact")
	var audits files
	fs.Var(&audits, "audit", "audit log `FILE` (audit.jsonl or a rotated .gz); repeatable")
	var (
		rules    = fs.String("rules", "", "candidate authorization item `FILE`")
		endpoint = fs.String("endpoint", "imds", "imds or wireserver (wireserver also replays hostga records)")
		asJSON   = fs.Bool("json", false, "print a JSON object")
	)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitBad
	}
	audits = append(audits, rest...)
	ep, err := learnEndpoint(*endpoint)
	if err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy impact: --%v\n", err)
		return ExitBad
	}
	if *rules == "" {
		fmt.Fprintf(c.stderr, "mspctl policy impact: --rules: missing: give the candidate policy file\n")
		return ExitBad
	}
	item, ok := c.load(*rules, false)
	if !ok {
		return ExitBad
	}
	recs, ok := c.readAudit("impact", audits)
	if !ok {
		return ExitBad
	}
	imp := learn.Replay(item, recs, ep)
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(imp); err != nil {
			return ExitBad
		}
	} else {
		c.printImpact(*rules, ep, imp)
	}
	if imp.Breaks > 0 {
		return ExitDenied
	}
	return ExitOK
}

func (c *cli) printImpact(rules string, ep hostproto.Endpoint, imp learn.Impact) {
	fmt.Fprintf(c.stdout, "%s on %d recorded %s requests: %d allowed, %d denied, %d of them forwarded when recorded (would break)\n",
		rules, imp.Replayed, ep, imp.Allowed, imp.Denied, imp.Breaks)
	if imp.NotReplayed > 0 {
		fmt.Fprintf(c.stdout, "%d requests refused by the request reader before authorization were not replayed\n", imp.NotReplayed)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tUID\tUSER\tEXE\tALLOWED\tDENIED\tBREAKS")
	for _, ci := range imp.Callers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", ci.Endpoint, ci.UID, dash(ci.User), dash(ci.Exe), ci.Allowed, ci.Denied, ci.Breaks)
	}
	_ = tw.Flush()
	for _, ci := range imp.Callers {
		for _, ex := range ci.Examples {
			fmt.Fprintf(c.stdout, "  denied %s (%s): %s %s: %s (recorded %s at %s)\n",
				dash(ci.User), dash(ci.Exe), ex.Method, ex.Target, ex.Reason, ex.Recorded, ex.Source)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var _ flag.Value = (*files)(nil)

// parseInterleaved parses flags that may stand after positional arguments
// (`--audit a.jsonl b.gz --out x`: the shell expands a glob in the
// middle) and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
