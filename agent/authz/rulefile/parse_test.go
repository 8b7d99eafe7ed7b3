package rulefile

import (
	"errors"
	"strings"
	"testing"
)

func TestParseItemProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string // every problem, in order
	}{
		{"unknown field", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a"},{"name":"b","path":"/b"},{"name":"c","pathh":"/c"}]}}`,
			[]string{"rules.privileges[2].pathh: unknown field: want one of name, path, queryParameters", `rules.privileges[2].path: "": missing or empty: want an absolute path such as /metadata/instance`}},
		{"every problem at once", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a","x":1}],"roles":[{"name":"r","privileges":["zz"]}],"identities":[{"name":"i","userName":7}]}}`,
			[]string{"rules.privileges[0].x: unknown field: want one of name, path, queryParameters", "rules.identities[0].userName: want a string, got number", `rules.roles[0].privileges[0]: no privilege named "zz"`}},
		{"dangling role reference", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a"}],"roles":[{"name":"r0","privileges":["a"]},{"name":"r1","privileges":["x"]}]}}`,
			[]string{`rules.roles[1].privileges[0]: no privilege named "x"`}},
		{"missing defaultAccess", `{}`, []string{`defaultAccess: missing: want "allow" or "deny"`}},
		{"bad defaultAccess and mode", `{"defaultAccess":"open","mode":"enforcing"}`,
			[]string{`defaultAccess: "open": want "allow" or "deny"`, `mode: "enforcing": want disabled, audit or enforce`}},
		{"types", `{"defaultAccess":1,"id":null,"rules":[]}`,
			[]string{"defaultAccess: want a string, got number", "id: want a string, got null", "rules: want an object, got array"}},
		{"empty id", `{"defaultAccess":"deny","id":""}`, []string{"id: empty: remove the field or give the policy an id"}},
		{"names", `{"defaultAccess":"deny","rules":{"privileges":[{"path":"/a"},{"name":"p","path":"/a"},{"name":"p","path":"/b"}]}}`,
			[]string{"rules.privileges[0].name: missing or empty: every entry needs a unique name", `rules.privileges[2].name: duplicate name "p" (first at rules.privileges[1]): names must be unique`}},
		{"paths", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":""},{"name":"b","path":"metadata"},{"name":"c","path":"/a?x=1"},{"name":"d","path":"/a//b"},{"name":"e","path":"/a/../b"},{"name":"f","path":"/a/./b"},{"name":"g","path":"/a%2Fb"}]}}`,
			[]string{
				`rules.privileges[0].path: "": missing or empty: want an absolute path such as /metadata/instance`,
				`rules.privileges[1].path: "metadata": want an absolute path starting with / such as /metadata/instance`,
				`rules.privileges[2].path: "/a?x=1": contains ?, #, % or ;: write the decoded path and put query constraints in queryParameters`,
				`rules.privileges[3].path: "/a//b": contains an empty segment (//)`,
				`rules.privileges[4].path: "/a/../b": contains "..", which requests can never have`,
				`rules.privileges[5].path: "/a/./b": contains a . segment, which requests can never have`,
				`rules.privileges[6].path: "/a%2Fb": contains ?, #, % or ;: write the decoded path and put query constraints in queryParameters`,
			}},
		{"query parameters", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a","queryParameters":{"":"x","k":"","n":1}}]}}`,
			[]string{"rules.privileges[0].queryParameters.n: want a string, got number", "rules.privileges[0].queryParameters: empty key: name the query parameter", "rules.privileges[0].queryParameters.k: empty value: give the required value or remove the key"}},
		{"query parameter values", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a","queryParameters":{"":"x","k":""}}]}}`,
			[]string{"rules.privileges[0].queryParameters: empty key: name the query parameter", "rules.privileges[0].queryParameters.k: empty value: give the required value or remove the key"}},
		{"roles", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a"}],"roles":[{"name":"r"},{"name":"s","privileges":["a","a"]}]}}`,
			[]string{"rules.roles[0].privileges: empty: reference at least one privilege", `rules.roles[1].privileges[1]: duplicate reference "a": list each privilege once`}},
		{"identities", `{"defaultAccess":"deny","rules":{"identities":[{"name":"a"},{"name":"b","userName":""},{"name":"c","groupName":"g","exePath":""}]}}`,
			[]string{"rules.identities[0]: no selector: give at least one of userName, groupName, exePath, processName", "rules.identities[1].userName: empty selector: remove it or give a value", "rules.identities[2].exePath: empty selector: remove it or give a value"}},
		{"assignments", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a","path":"/a"}],"roles":[{"name":"r","privileges":["a"]}],"identities":[{"name":"i","userName":"u"}],"roleAssignments":[{"identities":["i"]},{"role":"x","identities":[]},{"role":"r","identities":["i","j","i"]}]}}`,
			[]string{"rules.roleAssignments[0].role: missing or empty: name a role", `rules.roleAssignments[1].role: no role named "x"`, "rules.roleAssignments[1].identities: empty: reference at least one identity", `rules.roleAssignments[2].identities[1]: no identity named "j"`, `rules.roleAssignments[2].identities[2]: duplicate reference "i": list each identity once`}},
		{"syntax error path", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"a" "path":"/a"}]}}`,
			[]string{"rules.privileges[0]: invalid JSON: invalid character '\"' after object key:value pair"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseItem([]byte(tc.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v; want a *ValidationError", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

const imdsPolicy = `{
  "defaultAccess": "deny", "mode": "enforce", "id": "imds-test",
  "rules": {
    "privileges": [{"name": "instance", "path": "/metadata/instance", "queryParameters": {"api-version": "2021-02-01"}}],
    "roles": [{"name": "reader", "privileges": ["instance"]}],
    "identities": [{"name": "alice", "userName": "alice"}],
    "roleAssignments": [{"role": "reader", "identities": ["alice"]}]
  }
}`

func TestParseItemAccepts(t *testing.T) {
	it, err := ParseItem([]byte(imdsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if it.Mode != "enforce" || it.ID != "imds-test" || !it.Rules.Complete() || *it.Rules.Identities[0].UserName != "alice" {
		t.Errorf("parsed %+v", it)
	}
	it, err = ParseItem([]byte(`{"defaultAccess":"Allow"}`))
	if err != nil || it.Mode != "enforce" || it.Rules != nil {
		t.Errorf("missing mode: %+v, %v; want enforce and no rules", it, err)
	}
	it, err = ParseItem([]byte(`{"defaultAccess":"deny","rules":{"privileges":[]}}`))
	if err != nil || it.Rules.Complete() || it.Rules.Privileges == nil || it.Rules.Roles != nil {
		t.Errorf("partial rules: %+v, %v", it.Rules, err)
	}
}

// TestParseSettingsItemKeepsNoMode: a settings item without a mode follows
// the host, so the missing mode is kept as "" (issue 9); everything else
// reads as ParseItem does.
func TestParseSettingsItemKeepsNoMode(t *testing.T) {
	for _, tc := range []struct {
		doc, mode, problem string
	}{
		{`{"defaultAccess":"allow"}`, "", ""},
		{`{"defaultAccess":"allow","mode":"Audit"}`, "Audit", ""},
		{`{"defaultAccess":"allow","mode":"enforce"}`, "enforce", ""},
		{`{"defaultAccess":"allow","mode":""}`, "", `mode: "": want disabled, audit or enforce`},
		{`{"defaultAccess":"allow","mode":"enforcing"}`, "", `mode: "enforcing": want disabled, audit or enforce`},
		{`{"defaultAccess":"allow","mode":null}`, "", "mode: want a string, got null"},
		{`{"mode":"audit"}`, "", `defaultAccess: missing: want "allow" or "deny"`},
	} {
		it, err := ParseSettingsItem([]byte(tc.doc))
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: err = %v; want %q", tc.doc, err, tc.problem)
		case err == nil && it.Mode != tc.mode:
			t.Errorf("%s: mode %q; want %q", tc.doc, it.Mode, tc.mode)
		}
	}
	// The standalone reading is unchanged.
	if it, err := ParseItem([]byte(`{"defaultAccess":"allow"}`)); err != nil || it.Mode != "enforce" {
		t.Errorf("ParseItem without mode = %q, %v; want enforce", it.Mode, err)
	}
}

func TestParseLocalIgnoresMode(t *testing.T) {
	it, err := ParseLocal([]byte(`{"mode":"disabled"}`))
	if err != nil || it.Mode != "" || it.DefaultAccess != "" {
		t.Errorf("ParseLocal = %+v, %v; want empty mode and defaultAccess", it, err)
	}
	if _, err := ParseLocal([]byte(`{"mode":3}`)); err == nil {
		t.Error("a non-string mode was accepted")
	}
}

func TestParseTreeDepth(t *testing.T) {
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	_, err := ParseLocal([]byte(`{"rules":{"privileges":` + deep + `}}`))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Errorf("err = %v; want a depth error", err)
	}
}
