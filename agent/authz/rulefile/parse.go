package rulefile

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mspguest/msp/agent/hostproto"
)

// MaxFileSize bounds a local rule file or a policy file (authorization.md
// §6.5).
const MaxFileSize = 1 << 20

// Problem is one defect of a strictly loaded document, named by its JSON
// path ("rules.roles[1].privileges[0]"; "$" is the document).
type Problem struct {
	Path    string
	Message string
}

func (p *Problem) Error() string { return p.Path + ": " + p.Message }

// ValidationError lists every problem of a document, in document order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid rules: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// ParseItem reads an authorization item strictly, as the extension's
// settings and `mspctl policy` files carry it: {"id"?, "mode"?,
// "defaultAccess", "rules"?}. A missing mode is returned as "enforce". The
// error is a *ValidationError naming every problem.
func ParseItem(data []byte) (hostproto.AuthorizationItem, error) {
	return parseStrict(data, false)
}

// ParseLocal reads a local rule file strictly (authorization.md §6.2,
// §6.3): every field optional, a UTF-8 BOM tolerated, a "mode" ignored
// (I-18). The returned item's Mode is empty.
func ParseLocal(data []byte) (hostproto.AuthorizationItem, error) {
	return parseStrict(data, true)
}

func parseStrict(data []byte, local bool) (hostproto.AuthorizationItem, error) {
	fail := func(msg string) (hostproto.AuthorizationItem, error) {
		return hostproto.AuthorizationItem{}, &ValidationError{Problems: []Problem{{Path: "$", Message: msg}}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // I-15
	switch {
	case len(data) > MaxFileSize:
		return fail(fmt.Sprintf("%d bytes: larger than the %d byte limit", len(data), MaxFileSize))
	case len(bytes.TrimSpace(data)) == 0:
		return fail("empty document: want a JSON object")
	case !utf8.Valid(data):
		return fail("not valid UTF-8: save the file as UTF-8")
	}
	tree, err := parseTree(data)
	if err != nil {
		p := err.(*Problem)
		return hostproto.AuthorizationItem{}, &ValidationError{Problems: []Problem{*p}}
	}
	l := loader{local: local}
	item := l.item(tree)
	if tree.kind == jObject {
		// Validate what could be read too, so that one run lists every
		// problem; skip follow-ups at a path that already has one.
		shape := l.problems
		l.problems = nil
		l.validate(&item)
		l.problems = mergeProblems(shape, l.problems)
	}
	if len(l.problems) > 0 {
		return hostproto.AuthorizationItem{}, &ValidationError{Problems: l.problems}
	}
	return item, nil
}

// mergeProblems appends the validation problems to the shape problems,
// leaving out those at or under a path that already has a shape problem.
func mergeProblems(shape, valid []Problem) []Problem {
	out := shape
next:
	for _, v := range valid {
		for _, s := range shape {
			if v.Path == s.Path || strings.HasPrefix(v.Path, s.Path+".") || strings.HasPrefix(v.Path, s.Path+"[") {
				continue next
			}
		}
		out = append(out, v)
	}
	return out
}

// loader converts a jvalue tree into hostproto types, collecting problems.
type loader struct {
	local    bool
	sawID    bool // the document has an "id" key
	problems []Problem
}

func (l *loader) add(path, format string, args ...any) {
	l.problems = append(l.problems, Problem{Path: rootPath(path), Message: fmt.Sprintf(format, args...)})
}

// object calls set for each member of an object whose key is in fields and
// reports the others as unknown.
func (l *loader) object(v jvalue, path string, fields []string, set func(key string, v jvalue, path string)) bool {
	if v.kind != jObject {
		l.add(path, "want an object, got %v", v.kind)
		return false
	}
	for _, m := range v.members {
		mp := joinKey(path, m.key)
		if !contains(fields, m.key) {
			l.add(mp, "unknown field: want one of %s", strings.Join(fields, ", "))
			continue
		}
		set(m.key, m.val, mp)
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) str(v jvalue, path string) string {
	if v.kind != jString {
		l.add(path, "want a string, got %v", v.kind)
	}
	return v.str
}

func (l *loader) strPtr(v jvalue, path string) *string {
	s := l.str(v, path)
	return &s
}

func (l *loader) array(v jvalue, path string, each func(v jvalue, path string)) bool {
	if v.kind != jArray {
		l.add(path, "want an array, got %v", v.kind)
		return false
	}
	for i, e := range v.elems {
		each(e, path+"["+strconv.Itoa(i)+"]")
	}
	return true
}

func (l *loader) strings(v jvalue, path string) []string {
	out := []string{}
	l.array(v, path, func(e jvalue, p string) { out = append(out, l.str(e, p)) })
	return out
}

func (l *loader) item(v jvalue) hostproto.AuthorizationItem {
	var it hostproto.AuthorizationItem
	seen := map[string]bool{}
	l.object(v, "", []string{"defaultAccess", "mode", "id", "rules"}, func(key string, v jvalue, p string) {
		seen[key] = true
		switch key {
		case "defaultAccess":
			it.DefaultAccess = l.str(v, p)
		case "mode":
			m := l.str(v, p)
			if !l.local {
				it.Mode = m
			}
		case "id":
			l.sawID = true
			it.ID = l.str(v, p)
		case "rules":
			it.Rules = l.rules(v, p)
		}
	})
	if v.kind == jObject && !l.local {
		if !seen["defaultAccess"] {
			l.add("defaultAccess", "missing: want \"allow\" or \"deny\"")
		}
		if !seen["mode"] {
			it.Mode = hostproto.ModeEnforce.String()
		}
	}
	return it
}

func (l *loader) rules(v jvalue, path string) *hostproto.Rules {
	r := &hostproto.Rules{}
	l.object(v, path, []string{"privileges", "roles", "identities", "roleAssignments"}, func(key string, v jvalue, p string) {
		switch key {
		case "privileges":
			r.Privileges = []hostproto.Privilege{}
			l.array(v, p, func(e jvalue, p string) { r.Privileges = append(r.Privileges, l.privilege(e, p)) })
		case "roles":
			r.Roles = []hostproto.Role{}
			l.array(v, p, func(e jvalue, p string) { r.Roles = append(r.Roles, l.role(e, p)) })
		case "identities":
			r.Identities = []hostproto.Identity{}
			l.array(v, p, func(e jvalue, p string) { r.Identities = append(r.Identities, l.identity(e, p)) })
		case "roleAssignments":
			r.RoleAssignments = []hostproto.RoleAssignment{}
			l.array(v, p, func(e jvalue, p string) { r.RoleAssignments = append(r.RoleAssignments, l.assignment(e, p)) })
		}
	})
	return r
}

func (l *loader) privilege(v jvalue, path string) hostproto.Privilege {
	var p hostproto.Privilege
	l.object(v, path, []string{"name", "path", "queryParameters"}, func(key string, v jvalue, fp string) {
		switch key {
		case "name":
			p.Name = l.str(v, fp)
		case "path":
			p.Path = l.str(v, fp)
		case "queryParameters":
			p.QueryParameters = map[string]string{}
			if v.kind != jObject {
				l.add(fp, "want an object of strings, got %v", v.kind)
				return
			}
			for _, m := range v.members {
				p.QueryParameters[m.key] = l.str(m.val, joinKey(fp, m.key))
			}
		}
	})
	return p
}

func (l *loader) role(v jvalue, path string) hostproto.Role {
	var r hostproto.Role
	l.object(v, path, []string{"name", "privileges"}, func(key string, v jvalue, fp string) {
		switch key {
		case "name":
			r.Name = l.str(v, fp)
		case "privileges":
			r.Privileges = l.strings(v, fp)
		}
	})
	return r
}

func (l *loader) identity(v jvalue, path string) hostproto.Identity {
	var id hostproto.Identity
	l.object(v, path, []string{"name", "userName", "groupName", "exePath", "processName"}, func(key string, v jvalue, fp string) {
		switch key {
		case "name":
			id.Name = l.str(v, fp)
		case "userName":
			id.UserName = l.strPtr(v, fp)
		case "groupName":
			id.GroupName = l.strPtr(v, fp)
		case "exePath":
			id.ExePath = l.strPtr(v, fp)
		case "processName":
			id.ProcessName = l.strPtr(v, fp)
		}
	})
	return id
}

func (l *loader) assignment(v jvalue, path string) hostproto.RoleAssignment {
	var a hostproto.RoleAssignment
	l.object(v, path, []string{"role", "identities"}, func(key string, v jvalue, fp string) {
		switch key {
		case "role":
			a.Role = l.str(v, fp)
		case "identities":
			a.Identities = l.strings(v, fp)
		}
	})
	return a
}

// validate applies authorization.md §6.3 and the project's checks on
// privilege paths and modes.
func (l *loader) validate(it *hostproto.AuthorizationItem) {
	if it.DefaultAccess != "" || !l.local {
		if !strings.EqualFold(it.DefaultAccess, "allow") && !strings.EqualFold(it.DefaultAccess, "deny") {
			l.add("defaultAccess", "%q: want \"allow\" or \"deny\"", it.DefaultAccess)
		}
	}
	if !l.local {
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
