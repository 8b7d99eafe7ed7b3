package rulefile

import (
	"bytes"
	"fmt"
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

// ParseItem reads a standalone authorization item strictly, as `mspctl
// policy` files carry it: {"id"?, "mode"?, "defaultAccess", "rules"?}. A
// missing mode is returned as "enforce". The error is a *ValidationError
// naming every problem.
func ParseItem(data []byte) (hostproto.AuthorizationItem, error) {
	return parseStrict(data, kindPolicy)
}

// ParseSettingsItem reads an item of the extension's settings (the agent
// configuration's settings.imds and settings.wireServer) with the rules of
// ParseItem, except that a missing mode stays "": such an item follows the
// host's mode, and one that states a mode can only make the endpoint
// stricter (authz.Merge, authz.EffectiveMode; issue 9).
func ParseSettingsItem(data []byte) (hostproto.AuthorizationItem, error) {
	return parseStrict(data, kindSettings)
}

// ParseLocal reads a local rule file strictly (authorization.md §6.2,
// §6.3): every field optional, a UTF-8 BOM tolerated, a "mode" ignored
// (I-18). The returned item's Mode is empty.
func ParseLocal(data []byte) (hostproto.AuthorizationItem, error) {
	return parseStrict(data, kindLocal)
}

// itemKind says which document an item is read from.
type itemKind uint8

const (
	kindPolicy   itemKind = iota // standalone policy file: missing mode ⇒ enforce
	kindSettings                 // extension settings: missing mode ⇒ "" (follow the host)
	kindLocal                    // local rule file: mode ignored, every field optional
)

func parseStrict(data []byte, kind itemKind) (hostproto.AuthorizationItem, error) {
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
	l := loader{local: kind == kindLocal, keepNoMode: kind == kindSettings}
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
	local      bool
	keepNoMode bool // a missing mode stays "" (settings items)
	sawID      bool // the document has an "id" key
	sawMode    bool // the document has a "mode" key
	problems   []Problem
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
			l.sawMode = true
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
		if !seen["mode"] && !l.keepNoMode {
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
