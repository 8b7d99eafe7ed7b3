package rulefile

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaBase = "https://github.com/mspguest/msp/agent/authz/schema/"

// compileSchemas loads the embedded schemas into a validator.
func compileSchemas(t *testing.T) (item, local *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, name := range []string{ItemSchemaFile, LocalFileSchemaFile} {
		data, err := fs.ReadFile(Schemas(), name)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if item, err = c.Compile(schemaBase + ItemSchemaFile); err != nil {
		t.Fatalf("compile item schema: %v", err)
	}
	if local, err = c.Compile(schemaBase + LocalFileSchemaFile); err != nil {
		t.Fatalf("compile local schema: %v", err)
	}
	return item, local
}

func validate(s *jsonschema.Schema, doc string) error {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// TestSchemaAgreesWithLoader runs a corpus through the schema and the
// strict loader. They must agree, except on what JSON Schema cannot
// express (loaderOnly): there the schema accepts and the loader rejects.
func TestSchemaAgreesWithLoader(t *testing.T) {
	itemSchema, localSchema := compileSchemas(t)
	const rules = `"rules":{"privileges":[{"name":"p","path":"/metadata/instance","queryParameters":{"api-version":"2021-02-01"}}],"roles":[{"name":"r","privileges":["p"]}],"identities":[{"name":"i","userName":"root","groupName":"g","exePath":"/usr/bin/curl","processName":"curl"}],"roleAssignments":[{"role":"r","identities":["i"]}]}`
	for _, tc := range []struct {
		name       string
		doc        string
		item       bool // valid as an item
		local      bool // valid as a local file
		loaderOnly bool // the schema cannot see the defect
	}{
		{"full", `{"defaultAccess":"deny","mode":"enforce","id":"x",` + rules + `}`, true, true, false},
		{"minimal", `{"defaultAccess":"Allow"}`, true, true, false},
		{"empty object", `{}`, false, true, false},
		{"local with mode", `{"mode":"whatever"}`, false, true, false},
		{"bad mode", `{"defaultAccess":"deny","mode":"enforcing"}`, false, true, false},
		{"empty mode", `{"defaultAccess":"deny","mode":""}`, false, true, false},
		{"mode case", `{"defaultAccess":"deny","mode":"AUDIT"}`, true, true, false},
		{"bad defaultAccess", `{"defaultAccess":"open"}`, false, false, false},
		{"empty id", `{"defaultAccess":"deny","id":""}`, false, false, false},
		{"unknown top field", `{"defaultAccess":"deny","extra":1}`, false, false, false},
		{"unknown privilege field", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a","pathh":"/b"}]}}`, false, false, false},
		{"relative path", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"metadata"}]}}`, false, false, false},
		{"path with query", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a?b=c"}]}}`, false, false, false},
		{"path with //", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a//b"}]}}`, false, false, false},
		{"path with ..", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a/../b"}]}}`, false, false, false},
		{"path with dot segment", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a/."}]}}`, false, false, false},
		{"root path", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/"}]}}`, true, true, false},
		{"trailing slash", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/machine/"}]}}`, true, true, false},
		{"well-known", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/.well-known"}]}}`, true, true, false},
		{"empty query value", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a","queryParameters":{"k":""}}]}}`, false, false, false},
		{"empty query key", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a","queryParameters":{"":"v"}}]}}`, false, false, false},
		{"role without privileges", `{"defaultAccess":"deny","rules":{"roles":[{"name":"r","privileges":[]}]}}`, false, false, false},
		{"identity without selector", `{"defaultAccess":"deny","rules":{"identities":[{"name":"i"}]}}`, false, false, false},
		{"empty selector", `{"defaultAccess":"deny","rules":{"identities":[{"name":"i","userName":""}]}}`, false, false, false},
		{"null array", `{"defaultAccess":"deny","rules":{"roles":null}}`, false, false, false},
		{"repeated reference", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a"}],"roles":[{"name":"r","privileges":["p","p"]}]}}`, false, false, false},
		{"dangling reference", `{"defaultAccess":"deny","rules":{"roles":[{"name":"r","privileges":["x"]}]}}`, false, false, true},
		{"duplicate names", `{"defaultAccess":"deny","rules":{"privileges":[{"name":"p","path":"/a"},{"name":"p","path":"/b"}]}}`, false, false, true},
		{"duplicate keys", `{"defaultAccess":"deny","defaultAccess":"allow"}`, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []struct {
				kind   string
				schema *jsonschema.Schema
				parse  func([]byte) error
				want   bool
			}{
				{"item", itemSchema, func(b []byte) error { _, err := ParseItem(b); return err }, tc.item},
				{"settings", itemSchema, func(b []byte) error { _, err := ParseSettingsItem(b); return err }, tc.item},
				{"local", localSchema, func(b []byte) error { _, err := ParseLocal(b); return err }, tc.local},
			} {
				loaderErr := k.parse([]byte(tc.doc))
				if (loaderErr == nil) != k.want {
					t.Errorf("%s loader: err = %v; want valid %v", k.kind, loaderErr, k.want)
				}
				schemaErr := validate(k.schema, tc.doc)
				wantSchema := k.want || tc.loaderOnly
				if (schemaErr == nil) != wantSchema {
					t.Errorf("%s schema: err = %v; want valid %v", k.kind, schemaErr, wantSchema)
				}
			}
		})
	}
}

// TestExamplesMatchSchema validates every shipped example against the
// schema and the loader: items at the top of examples/, local rule files
// under examples/local/.
func TestExamplesMatchSchema(t *testing.T) {
	itemSchema, localSchema := compileSchemas(t)
	files, _ := filepath.Glob("../../../examples/*.json")
	locals, _ := filepath.Glob("../../../examples/local/*.json")
	if len(files) < 3 || len(locals) < 1 {
		t.Fatalf("found %d examples and %d local files; want at least 3 and 1", len(files), len(locals))
	}
	for _, set := range []struct {
		files  []string
		schema *jsonschema.Schema
		parse  func([]byte) error
	}{
		{files, itemSchema, func(b []byte) error { _, err := ParseItem(b); return err }},
		{locals, localSchema, func(b []byte) error { _, err := ParseLocal(b); return err }},
	} {
		for _, f := range set.files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(set.schema, string(data)); err != nil {
				t.Errorf("%s: schema: %v", f, err)
			}
			if err := set.parse(data); err != nil {
				t.Errorf("%s: loader: %v", f, err)
			}
		}
	}
}
