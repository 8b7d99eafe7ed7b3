package policycli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitBad     = 2 // bad input: usage, unreadable or invalid file
	ExitDenied  = 3 // explain: the request would be denied
	maxFileRead = rulefile.MaxFileSize + 1
)

const usage = `usage:
  mspctl policy validate [--local] FILE
  mspctl policy explain --rules FILE --endpoint imds|wireserver|hostga --url URL
                        --uid N [--euid N] [--method M] [--user NAME]
                        [--groups a,b] [--exe PATH] [--pid N] [--json]
  mspctl policy suggest --audit FILE... [--endpoint imds|wireserver]
                        [--default deny|allow] [--by user|group|exe|user+exe]
                        [--min-count N] [--mode enforce|audit|none] [--out FILE]
  mspctl policy impact  --rules FILE --audit FILE... [--endpoint imds|wireserver]
                        [--json]

FILE is an authorization item {"id"?, "mode"?, "defaultAccess", "rules"?}
(a missing mode means enforce); with --local, a local rule file. "-" reads
standard input. The caller is root only when --uid and --euid (default:
--uid) are both 0. explain exits 0 for allow or audit, 3 for deny, 2 for bad
input, including a --url that the proxy refuses before authorization (the
strict reading of the request-target, authorization.md I-24). suggest learns
an item from the agent's audit log (audit.jsonl and its rotated .gz files);
impact replays the log through a candidate item as if enforced and exits 3
when a request the agent forwarded would be denied.
`

// Main runs `mspctl policy` with the arguments after "policy".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitBad
	}
	env := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "validate":
		return env.validate(args[1:])
	case "explain":
		return env.explain(args[1:])
	case "suggest":
		return env.suggest(args[1:])
	case "impact":
		return env.impact(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "mspctl policy: unknown command %q: want validate, explain, suggest or impact\n%s", args[0], usage)
	return ExitBad
}

type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mspctl policy "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(c.stderr, usage) }
	return fs
}

// read returns a file's bytes ("-" is standard input), at most
// rulefile.MaxFileSize + 1 so the loader reports an oversized file.
func (c *cli) read(name string) ([]byte, error) {
	var r io.Reader = c.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, maxFileRead))
}

// load reads and strictly parses a policy file, printing its problems.
func (c *cli) load(name string, local bool) (hostproto.AuthorizationItem, bool) {
	data, err := c.read(name)
	if err != nil {
		fmt.Fprintf(c.stderr, "mspctl policy: %v\n", err)
		return hostproto.AuthorizationItem{}, false
	}
	parse := rulefile.ParseItem
	if local {
		parse = rulefile.ParseLocal
	}
	item, err := parse(data)
	var ve *rulefile.ValidationError
	switch {
	case errors.As(err, &ve):
		for _, p := range ve.Problems {
			fmt.Fprintf(c.stdout, "%s: %s\n", p.Path, p.Message)
		}
		return item, false
	case err != nil:
		fmt.Fprintf(c.stdout, "$: %v\n", err)
		return item, false
	}
	return item, true
}

func (c *cli) validate(args []string) int {
	fs := c.flags("validate")
	local := fs.Bool("local", false, "validate a local rule file (no mode, every field optional)")
	if err := fs.Parse(args); err != nil {
		return ExitBad
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(c.stderr, "mspctl policy validate: want exactly one FILE, got %d\n%s", fs.NArg(), usage)
		return ExitBad
	}
	item, ok := c.load(fs.Arg(0), *local)
	if !ok {
		return ExitBad
	}
	var snap *authz.Snapshot
	if *local {
		snap = authz.Merge(authz.Input{Local: &item}) // as the agent merges it
	} else {
		snap = authz.Compile(item)
	}
	for _, w := range snap.Warnings() {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	plural := "s"
	if snap.Privileges() == 1 {
		plural = ""
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d privilege%s)\n", fs.Arg(0), snap.Privileges(), plural)
	return ExitOK
}

// explanation is the --json output of explain.
type explanation struct {
	Decision    string `json:"decision"`
	Reason      string `json:"reason"`
	Privilege   string `json:"privilege,omitempty"`
	Role        string `json:"role,omitempty"`
	Identity    string `json:"identity,omitempty"`
	Endpoint    string `json:"endpoint"`
	Mode        string `json:"mode"`
	Canonical   string `json:"canonical,omitempty"`
	Explanation string `json:"explanation"`
}

func (c *cli) explain(args []string) int {
	fs := c.flags("explain")
	var (
		rules    = fs.String("rules", "", "authorization item `FILE` (\"-\" for standard input)")
		endpoint = fs.String("endpoint", "", "imds, wireserver or hostga")
		method   = fs.String("method", "GET", "request method")
		url      = fs.String("url", "", "request-target as sent: path and query")
		uid      = fs.String("uid", "", "caller real uid")
		euid     = fs.String("euid", "", "caller effective uid (default: --uid); root needs both 0")
		user     = fs.String("user", "", "caller user name")
		groups   = fs.String("groups", "", "caller group names, comma-separated")
		exe      = fs.String("exe", "", "caller executable path; the process name is its base name")
		pid      = fs.Int("pid", 0, "caller process id (informational)")
		asJSON   = fs.Bool("json", false, "print a JSON object")
	)
	if err := fs.Parse(args); err != nil {
		return ExitBad
	}
	var problems []string
	if fs.NArg() != 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q: every input is a flag", fs.Args()))
	}
	if *rules == "" {
		problems = append(problems, "--rules: missing: give the policy file")
	}
	ep, err := hostproto.ParseEndpoint(*endpoint)
	if err != nil {
		problems = append(problems, "--"+err.Error())
	}
	if *url == "" {
		problems = append(problems, "--url: missing: give the request-target, e.g. /metadata/instance?api-version=2021-02-01")
	} else if err := authz.CheckTarget(*url); err != nil {
		// The proxy refuses it before authorization: nothing to explain.
		problems = append(problems, fmt.Sprintf("--url: the proxy refuses this request-target: %v", err))
	}
	n, err := strconv.ParseUint(*uid, 10, 32)
	if err != nil {
		problems = append(problems, fmt.Sprintf("--uid %q: want a number such as 0 or 1000", *uid))
	}
	en := n // --euid defaults to --uid
	if *euid != "" {
		if en, err = strconv.ParseUint(*euid, 10, 32); err != nil {
			problems = append(problems, fmt.Sprintf("--euid %q: want a number such as 0 or 1000", *euid))
		}
	}
	if *method == "" {
		problems = append(problems, "--method: empty: give GET, POST, …")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(c.stderr, "mspctl policy explain: %s\n", p)
		}
		return ExitBad
	}
	item, ok := c.load(*rules, false)
	if !ok {
		return ExitBad
	}
	snap := authz.Compile(item)
	caller := authz.Caller{UID: uint32(n), Root: n == 0 && en == 0, UserName: *user, ExePath: *exe, PID: int32(*pid)}
	if *exe != "" {
		caller.ProcessName = filepath.Base(*exe)
	}
	for _, g := range strings.Split(*groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			caller.Groups = append(caller.Groups, g)
		}
	}
	d := snap.Decide(authz.Request{Endpoint: ep, Method: *method, Target: *url}, caller)
	out := explanation{
		Decision: d.Verdict.String(), Reason: string(d.Reason),
		Privilege: d.Privilege, Role: d.Role, Identity: d.Identity,
		Endpoint: ep.String(), Mode: snap.Mode().String(),
		Explanation: explain(d, snap),
	}
	var cn authz.Canonical
	if cn.Parse(*url) == nil {
		out.Canonical = cn.String()
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(c.stderr, "mspctl policy explain: %v\n", err)
			return ExitBad
		}
	} else {
		fmt.Fprintln(c.stdout, out.Decision)
		for _, kv := range [][2]string{
			{"reason", out.Reason}, {"privilege", out.Privilege}, {"role", out.Role}, {"identity", out.Identity},
			{"endpoint", out.Endpoint}, {"mode", out.Mode}, {"canonical", out.Canonical}, {"explanation", out.Explanation},
		} {
			if kv[1] != "" {
				fmt.Fprintf(c.stdout, "%s: %s\n", kv[0], kv[1])
			}
		}
	}
	if d.Verdict == authz.Deny {
		return ExitDenied
	}
	return ExitOK
}

// explain says in a sentence why the decision was taken.
func explain(d authz.Decision, snap *authz.Snapshot) string {
	var s string
	switch d.Reason {
	case authz.ReasonGranted:
		s = fmt.Sprintf("privilege %q covers the request and role %q grants it to identity %q, which matches the caller", d.Privilege, d.Role, d.Identity)
	case authz.ReasonIdentityMismatch:
		s = fmt.Sprintf("privilege %q covers the request but none of the identities it is granted to matches the caller", d.Privilege)
	case authz.ReasonAmbiguousQuery:
		s = fmt.Sprintf("privilege %q covers the request only ambiguously: a query parameter it constrains repeats with different values", d.Privilege)
	case authz.ReasonDefaultAllow:
		s = "no privilege covers the request and defaultAccess is allow"
	case authz.ReasonDefaultDeny:
		s = "no privilege covers the request and defaultAccess is deny"
	case authz.ReasonModeDisabled:
		s = "the endpoint's mode is disabled: nothing is checked"
	case authz.ReasonExempt:
		s = "an exempt request (PUT /vmagentlog or POST /machine/?comp=telemetrydata) from root is allowed without rules"
	case authz.ReasonRootRequired:
		s = "WireServer and HostGAPlugin serve only root (real and effective uid 0), in every mode"
	case authz.ReasonLocalRulesFailed:
		s = "a strict rule source failed to load: every request is denied"
	default:
		s = string(d.Reason)
	}
	if d.Verdict == authz.Audit && snap.Mode() == hostproto.ModeAudit {
		s = "audit mode: would deny, forwarded: " + s
	}
	return s
}
