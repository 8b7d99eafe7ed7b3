package authz

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/mspguest/msp/agent/hostproto"
)

// Snapshot is one endpoint's compiled policy. It is immutable and safe for
// concurrent use; build a new one when any input changes (the Hash tells
// whether it did, authorization.md §3 and I-21). Use it by pointer only.
type Snapshot struct {
	mode         hostproto.Mode
	defaultAllow bool
	failClosed   bool
	id           string
	hash         [sha256.Size]byte
	warnings     []string

	privs  []privilege
	idents []identity
	nodes  []node // segment trie; nodes[0] is the root "/"

	pool sync.Pool // *Canonical scratch buffers for Decide
}

// privilege is a compiled privilege: lower-cased constraints and the
// identities it is granted to.
type privilege struct {
	name   string
	path   string // lower-cased, for explanations
	query  [][2]string
	grants []grant
}

// grant records that role assignment role gave the privilege to identity.
type grant struct {
	identity int32
	role     string
}

// identity is a compiled identity; a selector with has* false is absent.
type identity struct {
	name                               string
	user, group, exe, proc             string
	hasUser, hasGroup, hasExe, hasProc bool
}

// node is a trie node: privileges whose path ends here, and children by
// segment.
type node struct {
	children map[string]int32
	privs    []int32
}

// Mode returns the endpoint mode the snapshot applies.
func (s *Snapshot) Mode() hostproto.Mode { return s.mode }

// DefaultAllow reports whether requests no privilege matches are allowed.
func (s *Snapshot) DefaultAllow() bool { return s.defaultAllow }

// FailClosed reports whether a strict source (local file, settings) failed
// and the snapshot denies everything (authorization.md §6.5).
func (s *Snapshot) FailClosed() bool { return s.failClosed }

// ID returns the compiled rule id (authorization.md §6.1).
func (s *Snapshot) ID() string { return s.id }

// Hash returns the SHA-256 of the inputs; recompile when it changes.
func (s *Snapshot) Hash() [sha256.Size]byte { return s.hash }

// Warnings returns the defects found while compiling (host payload
// defects, missing arrays, source failures), one "source: path: message"
// string each. The slice must not be modified.
func (s *Snapshot) Warnings() []string { return s.warnings }

// Privileges returns the number of compiled privileges.
func (s *Snapshot) Privileges() int { return len(s.privs) }

// Compile compiles a single item without name prefixes, as `mspctl policy
// explain` and tests use it. An unknown mode is enforced and an unknown
// defaultAccess denies; both are reported in Warnings.
func Compile(item hostproto.AuthorizationItem) *Snapshot {
	b := newBuilder()
	b.mode = b.itemMode("", &item)
	b.defaultAllow = b.itemDefaultAllow("", &item)
	b.id = item.ID
	b.addRules("", "", []*hostproto.Rules{item.Rules})
	return b.finish(item)
}

// Unrestricted returns a snapshot with no rules that allows every request
// in the given mode (a v1 payload or a missing item: "no rules ⇒ Ok",
// authorization.md §5); the root requirement of WireServer and
// HostGAPlugin still applies.
func Unrestricted(mode hostproto.Mode) *Snapshot {
	b := newBuilder()
	b.mode = mode
	b.defaultAllow = true
	return b.finish(mode)
}

// builder accumulates a snapshot.
type builder struct {
	s *Snapshot
	// fields mirrored into s by finish
	mode         hostproto.Mode
	defaultAllow bool
	failClosed   bool
	id           string
	warnings     []string
}

func newBuilder() *builder {
	return &builder{s: &Snapshot{nodes: []node{{}}}}
}

func (b *builder) warn(src, path, msg string) {
	w := msg
	if path != "" {
		w = path + ": " + msg
	}
	if src != "" {
		w = src + ": " + w
	}
	b.warnings = append(b.warnings, w)
}

func (b *builder) warnIncomplete() {
	b.warn("", "rules", "some of privileges, roles, identities and roleAssignments are missing: no privilege is built and every decision falls to defaultAccess")
}

func (b *builder) itemMode(src string, it *hostproto.AuthorizationItem) hostproto.Mode {
	m, ok := hostproto.ParseMode(it.Mode)
	if !ok {
		b.warn(src, "mode", fmt.Sprintf("%q: want disabled, audit or enforce; enforcing", it.Mode))
	}
	return m
}

func (b *builder) itemDefaultAllow(src string, it *hostproto.AuthorizationItem) bool {
	switch {
	case strings.EqualFold(it.DefaultAccess, "allow"):
		return true
	case strings.EqualFold(it.DefaultAccess, "deny"):
		return false
	}
	b.warn(src, "defaultAccess", fmt.Sprintf("%q: want allow or deny; denying", it.DefaultAccess))
	return false
}

// addRules adds the rules of a single item if all four arrays are present.
func (b *builder) addRules(src, prefix string, rules []*hostproto.Rules) {
	if rules[0] == nil {
		return
	}
	if !complete(rules) {
		b.warnIncomplete()
		return
	}
	b.addSource(src, prefix, rules[0])
}

// addSource compiles one source's rule graph as GPA does (authorization.md
// §3): duplicates last wins, dangling references skipped; every defect is
// a warning. Strictly loaded sources have none.
func (b *builder) addSource(src, prefix string, r *hostproto.Rules) {
	s := b.s
	privByName := map[string]int32{}
	for i, p := range r.Privileges {
		path := fmt.Sprintf("rules.privileges[%d]", i)
		if p.Name == "" {
			b.warn(src, path+".name", "empty name")
		}
		cp := privilege{name: prefix + p.Name, path: strings.ToLower(p.Path)}
		if p.Path == "" {
			b.warn(src, path+".path", "empty path covers every request")
		} else if p.Path[0] != '/' {
			b.warn(src, path+".path", fmt.Sprintf("%q does not start with /; read as /%s", p.Path, p.Path))
			cp.path = "/" + cp.path
		}
		for k, v := range p.QueryParameters {
			if k == "" {
				b.warn(src, path+".queryParameters", "empty key never matches")
			}
			cp.query = append(cp.query, [2]string{strings.ToLower(k), strings.ToLower(v)})
		}
		sortPairs(cp.query)
		if j, dup := privByName[p.Name]; dup {
			b.warn(src, path+".name", fmt.Sprintf("duplicate privilege %q: the last one wins", p.Name))
			s.privs[j] = cp
			continue
		}
		privByName[p.Name] = int32(len(s.privs))
		s.privs = append(s.privs, cp)
	}
	identByName := map[string]int32{}
	for i, id := range r.Identities {
		path := fmt.Sprintf("rules.identities[%d]", i)
		ci := identity{name: prefix + id.Name}
		sel := func(field string, v *string, dst *string, has *bool) {
			if v == nil {
				return
			}
			*dst, *has = *v, true
			if *v == "" {
				b.warn(src, path+"."+field, "empty selector never matches")
			}
		}
		sel("userName", id.UserName, &ci.user, &ci.hasUser)
		sel("groupName", id.GroupName, &ci.group, &ci.hasGroup)
		sel("exePath", id.ExePath, &ci.exe, &ci.hasExe)
		sel("processName", id.ProcessName, &ci.proc, &ci.hasProc)
		if !ci.hasUser && !ci.hasGroup && !ci.hasExe && !ci.hasProc {
			b.warn(src, path, fmt.Sprintf("identity %q has no selector and matches every caller", id.Name))
		}
		if j, dup := identByName[id.Name]; dup {
			b.warn(src, path+".name", fmt.Sprintf("duplicate identity %q: the last one wins", id.Name))
			s.idents[j] = ci
			continue
		}
		identByName[id.Name] = int32(len(s.idents))
		s.idents = append(s.idents, ci)
	}
	roles := map[string][]string{}
	for i, r := range r.Roles {
		if _, dup := roles[r.Name]; dup {
			b.warn(src, fmt.Sprintf("rules.roles[%d].name", i), fmt.Sprintf("duplicate role %q: the last one wins", r.Name))
		}
		roles[r.Name] = r.Privileges
	}
	for i, a := range r.RoleAssignments {
		path := fmt.Sprintf("rules.roleAssignments[%d]", i)
		privNames, ok := roles[a.Role]
		if !ok {
			b.warn(src, path+".role", fmt.Sprintf("no role named %q: assignment skipped", a.Role))
			continue
		}
		for _, pn := range privNames {
			pi, ok := privByName[pn]
			if !ok {
				b.warn(src, path, fmt.Sprintf("role %q: no privilege named %q: skipped", a.Role, pn))
				continue
			}
			for _, in := range a.Identities {
				ii, ok := identByName[in]
				if !ok {
					b.warn(src, path+".identities", fmt.Sprintf("no identity named %q: skipped", in))
					continue
				}
				p := &s.privs[pi]
				if !hasGrant(p.grants, ii) {
					p.grants = append(p.grants, grant{identity: ii, role: prefix + a.Role})
				}
			}
		}
	}
}

func hasGrant(gs []grant, id int32) bool {
	for _, g := range gs {
		if g.identity == id {
			return true
		}
	}
	return false
}

func sortPairs(p [][2]string) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j][0] < p[j-1][0]; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// finish builds the trie, hashes the inputs and returns the snapshot.
func (b *builder) finish(inputs any) *Snapshot {
	s := b.s
	s.mode, s.defaultAllow, s.failClosed, s.id, s.warnings = b.mode, b.defaultAllow, b.failClosed, b.id, b.warnings
	for i := range s.privs {
		s.insert(int32(i))
	}
	h := sha256.New()
	// The inputs are plain data; Marshal sorts map keys, so equal
	// inputs hash equally.
	enc, err := json.Marshal(inputs)
	if err != nil {
		enc = []byte(fmt.Sprintf("%#v", inputs))
	}
	h.Write(enc)
	fmt.Fprintf(h, "\x00%v", s.warnings)
	copy(s.hash[:], h.Sum(nil))
	s.pool.New = func() any { return new(Canonical) }
	return s
}

// insert adds privilege i under its path's segments; a trailing "/" and
// the root "/" add no segment (authorization.md §4.4 step 7).
func (s *Snapshot) insert(i int32) {
	n := int32(0)
	for _, seg := range strings.Split(strings.Trim(s.privs[i].path, "/"), "/") {
		if seg == "" && n == 0 {
			break // "/" or ""
		}
		next, ok := s.nodes[n].children[seg]
		if !ok {
			next = int32(len(s.nodes))
			s.nodes = append(s.nodes, node{})
			if s.nodes[n].children == nil {
				s.nodes[n].children = map[string]int32{}
			}
			s.nodes[n].children[seg] = next
		}
		n = next
	}
	s.nodes[n].privs = append(s.nodes[n].privs, i)
}
