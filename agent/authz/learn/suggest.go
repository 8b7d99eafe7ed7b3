package learn

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/authz/rulefile"
	"github.com/mspguest/msp/agent/hostproto"
)

// By says which caller claims make an identity.
type By string

// Identity groupings of `mspctl policy suggest --by`.
const (
	ByUser    By = "user"
	ByGroup   By = "group"
	ByExe     By = "exe"
	ByUserExe By = "user+exe"
)

// ParseBy reads a --by value.
func ParseBy(s string) (By, error) {
	switch b := By(s); b {
	case ByUser, ByGroup, ByExe, ByUserExe:
		return b, nil
	}
	return "", fmt.Errorf("--by %q: want user, group, exe or user+exe", s)
}

// Options steer Suggest.
type Options struct {
	// Endpoint is IMDS or WireServer; WireServer learns from the
	// WireServer and HostGAPlugin records together, since HostGAPlugin
	// follows WireServer's item.
	Endpoint hostproto.Endpoint
	// DefaultAccess is "deny" (default) or "allow".
	DefaultAccess string
	// By groups callers into identities; "" means ByUserExe.
	By By
	// MinCount leaves out a caller's path seen fewer times (noise);
	// 0 or 1 keeps everything.
	MinCount int
	// Mode is written into the item ("" leaves it out, so that as
	// extension settings it follows the host).
	Mode string
	// ManyChildren is how many different segments under one parent make
	// that parent a prefix privilege; 0 means 4.
	ManyChildren int
}

// Suggestion is a suggested item and what it was learnt from.
type Suggestion struct {
	Item hostproto.AuthorizationItem
	// Learnt counts the records the item admits; Notes say what was left
	// out and why, and what was generalised.
	Learnt   int
	Notes    []string
	From, To time.Time
}

// learnt is one forwarded request reduced to what the policy needs.
type learnt struct {
	ident identityKey
	segs  []string
	query [][2]string
}

type identityKey struct {
	user, group, exe string
}

// apiVersion is never constrained: SDK upgrades change it, and pinning it
// would break a workload on upgrade without protecting anything.
const apiVersion = "api-version"

// Suggest builds an authorization item that admits every request the
// records show the agent forwarding to opt.Endpoint.
func Suggest(recs []Record, opt Options) (Suggestion, error) {
	if opt.Endpoint != hostproto.IMDS && opt.Endpoint != hostproto.WireServer {
		return Suggestion{}, fmt.Errorf("endpoint %s: suggest learns imds or wireserver (hostga follows wireserver)", opt.Endpoint)
	}
	if opt.By == "" {
		opt.By = ByUserExe
	}
	if opt.DefaultAccess == "" {
		opt.DefaultAccess = "deny"
	}
	if opt.DefaultAccess != "deny" && opt.DefaultAccess != "allow" {
		return Suggestion{}, fmt.Errorf("--default %q: want deny or allow", opt.DefaultAccess)
	}
	if opt.ManyChildren <= 0 {
		opt.ManyChildren = 4
	}
	var s Suggestion
	notes := newNoteCounter()
	var reqs []learnt
	var cn authz.Canonical
	for _, r := range recs {
		if !endpointOf(r.Endpoint, opt.Endpoint) {
			continue
		}
		switch r.Decision {
		case audit.DecisionAllow, audit.DecisionAuditDeny:
		case audit.DecisionExempt:
			notes.add("exempt requests (never authorized by rules) not learnt")
			continue
		default:
			notes.add(fmt.Sprintf("%s requests (the agent did not forward them) not learnt", r.Decision))
			continue
		}
		if err := cn.Parse(r.Target); err != nil {
			notes.add("requests whose target the matcher rejects not learnt")
			continue
		}
		id, ok := identityOf(r.Caller, opt.By, notes)
		if !ok {
			continue
		}
		if s.From.IsZero() || r.Time.Before(s.From) {
			s.From = r.Time
		}
		if r.Time.After(s.To) {
			s.To = r.Time
		}
		reqs = append(reqs, learnt{ident: id, segs: cn.Segments(), query: cn.Query()})
	}
	reqs = dropRare(reqs, opt.MinCount, notes)
	s.Learnt = len(reqs)
	s.Item = build(reqs, opt, s.From, s.To, notes)
	s.Notes = notes.list()
	// The suggestion must be a policy the agent accepts as settings.
	data, err := json.Marshal(s.Item)
	if err != nil {
		return Suggestion{}, err
	}
	if _, err := rulefile.ParseItem(data); err != nil {
		return Suggestion{}, fmt.Errorf("suggested policy does not validate (a bug in suggest): %w", err)
	}
	return s, nil
}

// endpointOf reports whether an audit endpoint name belongs to the item of
// ep (HostGAPlugin records belong to WireServer's).
func endpointOf(name string, ep hostproto.Endpoint) bool {
	switch ep {
	case hostproto.IMDS:
		return name == hostproto.IMDS.String()
	case hostproto.WireServer:
		return name == hostproto.WireServer.String() || name == hostproto.HostGAPlugin.String()
	}
	return false
}

// identityOf picks the selectors of a caller. An empty claim never becomes
// a selector (it would match nobody, or, worse, a placeholder): user+exe
// falls back to the user alone when the executable was not verified.
func identityOf(c audit.Caller, by By, notes *noteCounter) (identityKey, bool) {
	var k identityKey
	group := ""
	if len(c.Groups) > 0 {
		group = c.Groups[0]
	}
	switch by {
	case ByUser:
		k.user = c.User
	case ByGroup:
		k.group = group
	case ByExe:
		k.exe = c.Exe
	case ByUserExe:
		k.user, k.exe = c.User, c.Exe
		if c.Exe == "" && c.User != "" {
			notes.add("callers without a verified executable identified by user alone")
		}
	}
	if k == (identityKey{}) {
		notes.add(fmt.Sprintf("requests from callers without a %s claim not learnt (no selector could name them)", by))
		return k, false
	}
	return k, true
}

// dropRare leaves out a caller's path seen fewer than min times.
func dropRare(reqs []learnt, min int, notes *noteCounter) []learnt {
	if min <= 1 {
		return reqs
	}
	type key struct {
		id   identityKey
		path string
	}
	count := map[key]int{}
	for _, r := range reqs {
		count[key{r.ident, joinPath(r.segs)}]++
	}
	out := reqs[:0]
	for _, r := range reqs {
		if count[key{r.ident, joinPath(r.segs)}] >= min {
			out = append(out, r)
		} else {
			notes.add(fmt.Sprintf("requests of a caller and path seen fewer than %d times not learnt (--min-count)", min))
		}
	}
	return out
}

func joinPath(segs []string) string { return "/" + strings.Join(segs, "/") }

// minSegments is the shortest privilege path: two segments under
// /metadata (so /metadata never grants all of IMDS), one elsewhere.
func minSegments(segs []string) int {
	if len(segs) > 0 && segs[0] == "metadata" {
		return 2
	}
	return 1
}

// privKey is a privilege's content: its path and sorted constraints.
type privKey struct {
	path  string
	query string // "k=v&k=v", sorted
}

func build(reqs []learnt, opt Options, from, to time.Time, notes *noteCounter) hostproto.AuthorizationItem {
	byIdent := map[identityKey][]learnt{}
	var idents []identityKey
	for _, r := range reqs {
		if _, ok := byIdent[r.ident]; !ok {
			idents = append(idents, r.ident)
		}
		byIdent[r.ident] = append(byIdent[r.ident], r)
	}
	sort.Slice(idents, func(i, j int) bool { return identLabel(idents[i]) < identLabel(idents[j]) })

	privs := map[privKey]hostproto.Privilege{}
	names := newNamer()
	rules := &hostproto.Rules{
		Privileges: []hostproto.Privilege{}, Roles: []hostproto.Role{},
		Identities: []hostproto.Identity{}, RoleAssignments: []hostproto.RoleAssignment{},
	}
	for _, id := range idents {
		rs := byIdent[id]
		prefixes := generalise(rs, opt.ManyChildren, notes)
		groups := map[string][]learnt{}
		var paths []string
		for _, r := range rs {
			p := prefixes[joinPath(r.segs)]
			if p == "" {
				continue
			}
			if _, ok := groups[p]; !ok {
				paths = append(paths, p)
			}
			groups[p] = append(groups[p], r)
		}
		sort.Strings(paths)
		var roleprivs []string
		for _, p := range paths {
			var q map[string]string
			if opt.DefaultAccess == "deny" {
				// Under defaultAccess allow a constraint would only let a
				// request with another value fall through to allow.
				q = constraints(groups[p])
			}
			if n := len(groups[p][0].segs); n < minSegments(groups[p][0].segs) && len(q) == 0 {
				// A bare / or /metadata privilege would grant the whole
				// endpoint (or all of IMDS): such a request is admitted only
				// through a query constraint.
				notes.add("requests to / or /metadata without a constant query parameter not learnt (a privilege there would grant everything below)")
				continue
			}
			k := privKey{path: p, query: encodeQuery(q)}
			pv, ok := privs[k]
			if !ok {
				pv = hostproto.Privilege{Name: names.unique("p" + slug(p) + querySlug(q)), Path: p}
				if len(q) > 0 {
					pv.QueryParameters = q
				}
				privs[k] = pv
				rules.Privileges = append(rules.Privileges, pv)
			}
			if !slices.Contains(roleprivs, pv.Name) {
				roleprivs = append(roleprivs, pv.Name)
			}
		}
		ident := hostproto.Identity{Name: names.unique("id" + slug(identLabel(id)))}
		if id.user != "" {
			ident.UserName = ptr(id.user)
		}
		if id.group != "" {
			ident.GroupName = ptr(id.group)
		}
		if id.exe != "" {
			ident.ExePath = ptr(id.exe)
		}
		role := hostproto.Role{Name: names.unique("r" + slug(identLabel(id))), Privileges: roleprivs}
		rules.Identities = append(rules.Identities, ident)
		rules.Roles = append(rules.Roles, role)
		rules.RoleAssignments = append(rules.RoleAssignments, hostproto.RoleAssignment{Role: role.Name, Identities: []string{ident.Name}})
	}
	item := hostproto.AuthorizationItem{
		DefaultAccess: opt.DefaultAccess,
		Mode:          opt.Mode,
		ID:            fmt.Sprintf("suggested-%s-%s-%s-%dreq", opt.Endpoint, stamp(from), stamp(to), len(reqs)),
	}
	if len(idents) > 0 {
		item.Rules = rules
	}
	return item
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format("20060102T150405Z")
}

// generalise maps every observed path of one identity to the privilege
// path that covers it: itself, or the shallowest ancestor (of at least
// minSegments segments) under which the identity used ManyChildren or
// more different next segments. A segment a privilege path cannot spell
// (?, #, %, ;, controls, non-ASCII) is covered by its parent.
func generalise(rs []learnt, many int, notes *noteCounter) map[string]string {
	children := map[string]map[string]bool{}
	for _, r := range rs {
		for i := range r.segs {
			parent := joinPath(r.segs[:i])
			if children[parent] == nil {
				children[parent] = map[string]bool{}
			}
			children[parent][r.segs[i]] = true
		}
	}
	out := map[string]string{}
	for _, r := range rs {
		full := joinPath(r.segs)
		if _, done := out[full]; done {
			continue
		}
		n := len(r.segs)
		for i := range r.segs {
			if !spellable(r.segs[i]) {
				n = i
				break
			}
		}
		min := minSegments(r.segs)
		for i := min; i < n; i++ {
			if len(children[joinPath(r.segs[:i])]) >= many {
				notes.add(fmt.Sprintf("%s: %d different segments follow it: made a prefix privilege", joinPath(r.segs[:i]), len(children[joinPath(r.segs[:i])])))
				n = i
				break
			}
		}
		switch {
		case n >= min:
			out[full] = joinPath(r.segs[:n])
		case n == len(r.segs):
			// The request itself is shorter than a privilege may be
			// (/?comp=versions, /metadata?…): build admits it only with
			// query constraints.
			out[full] = full
		default:
			// Covering it would need a privilege shorter than allowed.
			notes.add("requests whose path no privilege of at least the minimum length can spell not learnt")
			out[full] = ""
		}
	}
	return out
}

// spellable reports whether a decoded segment can stand in a privilege
// path (rulefile's privilege path rules, plus ASCII only).
func spellable(seg string) bool {
	if seg == "" {
		return false
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c < 0x21 || c >= 0x7f || strings.IndexByte("?#%;", c) >= 0 {
			return false
		}
	}
	return true
}

// constraints returns the query parameters every request of a privilege
// carried with one and the same value (api-version excepted).
func constraints(rs []learnt) map[string]string {
	var q map[string]string
	for i, r := range rs {
		vals := map[string]string{}
		ambiguous := map[string]bool{}
		for _, kv := range r.query {
			if v, seen := vals[kv[0]]; seen && v != kv[1] {
				ambiguous[kv[0]] = true
			}
			vals[kv[0]] = kv[1]
		}
		if i == 0 {
			q = map[string]string{}
			for k, v := range vals {
				if k != "" && v != "" && k != apiVersion && !ambiguous[k] {
					q[k] = v
				}
			}
			continue
		}
		for k, v := range q {
			if vals[k] != v || ambiguous[k] {
				delete(q, k)
			}
		}
	}
	return q
}

func encodeQuery(q map[string]string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + q[k])
	}
	return b.String()
}

func identLabel(k identityKey) string {
	parts := []string{}
	for _, s := range []string{k.user, k.group, path.Base(k.exe)} {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "-")
}

// querySlug names a privilege's constraints readably: for a URL value its
// host (resource=https://vault.azure.net → _vault-azure-net).
func querySlug(q map[string]string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := q[k]
		if _, rest, ok := strings.Cut(v, "://"); ok {
			v, _, _ = strings.Cut(rest, "/")
		}
		b.WriteString(slug(v))
	}
	return b.String()
}

// slug turns text into "_word_word": letters and digits kept, runs of
// anything else one separator.
func slug(s string) string {
	var b strings.Builder
	sep := true
	for _, r := range strings.ToLower(s) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			if sep {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			sep = false
		} else {
			sep = true
		}
	}
	if b.Len() == 0 {
		return "_root"
	}
	return b.String()
}

type namer map[string]int

func newNamer() namer { return namer{} }

// unique returns name, or name_2, name_3 … when it was handed out before.
func (n namer) unique(name string) string {
	n[name]++
	if c := n[name]; c > 1 {
		return fmt.Sprintf("%s_%d", name, c)
	}
	return name
}

func ptr(s string) *string { return &s }

// noteCounter collects notes with their counts, in first-seen order.
type noteCounter struct {
	order []string
	count map[string]int
}

func newNoteCounter() *noteCounter { return &noteCounter{count: map[string]int{}} }

func (n *noteCounter) add(s string) {
	if n.count[s] == 0 {
		n.order = append(n.order, s)
	}
	n.count[s]++
}

func (n *noteCounter) list() []string {
	out := make([]string, len(n.order))
	for i, s := range n.order {
		out[i] = fmt.Sprintf("%s (%d)", s, n.count[s])
	}
	return out
}
