package rulefile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
)

// validate applies authorization.md §6.3 and the project's checks on
// privilege paths and modes.
func (l *loader) validate(it *hostproto.AuthorizationItem) {
	if it.DefaultAccess != "" || !l.local {
		if !strings.EqualFold(it.DefaultAccess, "allow") && !strings.EqualFold(it.DefaultAccess, "deny") {
			l.add("defaultAccess", "%q: want \"allow\" or \"deny\"", it.DefaultAccess)
		}
	}
	if !l.local && (l.sawMode || !l.keepNoMode) {
		if _, ok := hostproto.ParseMode(it.Mode); !ok {
			l.add("mode", "%q: want disabled, audit or enforce", it.Mode)
		}
	}
	// The id key is optional, but when written it must say something.
	if it.ID == "" && l.sawID {
		l.add("id", "empty: remove the field or give the policy an id")
	}
	r := it.Rules
	if r == nil {
		return
	}
	privs := l.names("rules.privileges", len(r.Privileges), func(i int) string { return r.Privileges[i].Name })
	for i, p := range r.Privileges {
		path := fmt.Sprintf("rules.privileges[%d]", i)
		if msg := checkPrivilegePath(p.Path); msg != "" {
			l.add(path+".path", "%q: %s", p.Path, msg)
		}
		keys := make([]string, 0, len(p.QueryParameters))
		for k := range p.QueryParameters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" {
				l.add(path+".queryParameters", "empty key: name the query parameter")
			} else if p.QueryParameters[k] == "" {
				l.add(path+".queryParameters."+k, "empty value: give the required value or remove the key")
			}
		}
	}
	roles := l.names("rules.roles", len(r.Roles), func(i int) string { return r.Roles[i].Name })
	for i, ro := range r.Roles {
		l.refs(fmt.Sprintf("rules.roles[%d].privileges", i), ro.Privileges, privs, "privilege")
	}
	idents := l.names("rules.identities", len(r.Identities), func(i int) string { return r.Identities[i].Name })
	for i, id := range r.Identities {
		path := fmt.Sprintf("rules.identities[%d]", i)
		for _, s := range []struct {
			field string
			v     *string
		}{{"userName", id.UserName}, {"groupName", id.GroupName}, {"exePath", id.ExePath}, {"processName", id.ProcessName}} {
			if s.v == nil {
				continue
			}
			if *s.v == "" {
				l.add(path+"."+s.field, "empty selector: remove it or give a value")
			}
		}
		if id.UserName == nil && id.GroupName == nil && id.ExePath == nil && id.ProcessName == nil {
			l.add(path, "no selector: give at least one of userName, groupName, exePath, processName")
		}
	}
	for i, a := range r.RoleAssignments {
		path := fmt.Sprintf("rules.roleAssignments[%d]", i)
		if a.Role == "" {
			l.add(path+".role", "missing or empty: name a role")
		} else if !roles[a.Role] {
			l.add(path+".role", "no role named %q", a.Role)
		}
		l.refs(path+".identities", a.Identities, idents, "identity")
	}
}

// names checks that every name of an array is non-empty and unique and
// returns the set.
func (l *loader) names(path string, n int, name func(int) string) map[string]bool {
	set := map[string]bool{}
	first := map[string]int{}
	for i := 0; i < n; i++ {
		s := name(i)
		p := fmt.Sprintf("%s[%d].name", path, i)
		switch {
		case s == "":
			l.add(p, "missing or empty: every entry needs a unique name")
		case set[s]:
			l.add(p, "duplicate name %q (first at %s[%d]): names must be unique", s, path, first[s])
		default:
			set[s], first[s] = true, i
		}
	}
	return set
}

// refs checks a list of references: at least one, all existing, no
// duplicates.
func (l *loader) refs(path string, refs []string, known map[string]bool, what string) {
	if len(refs) == 0 {
		l.add(path, "empty: reference at least one %s", what)
		return
	}
	seen := map[string]bool{}
	for i, r := range refs {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !known[r]:
			l.add(p, "no %s named %q", what, r)
		case seen[r]:
			l.add(p, "duplicate reference %q: list each %s once", r, what)
		}
		seen[r] = true
	}
}

// checkPrivilegePath returns why a privilege path is unusable, or "". A
// path is matched against decoded, normalised request paths, so encoded
// or dot segments could never match.
func checkPrivilegePath(p string) string {
	switch {
	case p == "":
		return "missing or empty: want an absolute path such as /metadata/instance"
	case p[0] != '/':
		return "want an absolute path starting with / such as /metadata/instance"
	case strings.ContainsAny(p, "?#%;"):
		return "contains ?, #, % or ;: write the decoded path and put query constraints in queryParameters"
	case strings.Contains(p, "//"):
		return "contains an empty segment (//)"
	}
	for _, b := range []byte(p) {
		if b < 0x20 || b == 0x7f {
			return "contains a control character"
		}
	}
	if strings.Contains(p, "..") {
		return "contains \"..\", which requests can never have"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." {
			return "contains a . segment, which requests can never have"
		}
	}
	return ""
}
