package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// armTemplate is the part of an ARM template the tests read.
type armTemplate struct {
	Schema     string                  `json:"$schema"`
	Parameters map[string]armParameter `json:"parameters"`
	Variables  map[string]any          `json:"variables"`
	Resources  []armResource           `json:"resources"`
	Outputs    map[string]any          `json:"outputs"`
}

type armParameter struct {
	Type         string          `json:"type"`
	DefaultValue json.RawMessage `json:"defaultValue"`
}

type armResource struct {
	Type       string          `json:"type"`
	APIVersion string          `json:"apiVersion"`
	Properties json.RawMessage `json:"properties"`
}

// armTemplates are every ARM template this package ships.
var armTemplates = []string{"greenfield.json", dcrTemplate}

func readTemplate(t *testing.T, path string) armTemplate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl armTemplate
	if err := json.Unmarshal(data, &tmpl); err != nil {
		t.Fatalf("%s does not parse as JSON: %v", path, err)
	}
	if !strings.Contains(tmpl.Schema, "deploymentTemplate.json") {
		t.Errorf("%s: $schema %q; want an ARM deployment template schema", path, tmpl.Schema)
	}
	if len(tmpl.Resources) == 0 {
		t.Errorf("%s: no resources", path)
	}
	return tmpl
}

var (
	paramRef    = regexp.MustCompile(`parameters\('([^']+)'\)`)
	variableRef = regexp.MustCompile(`variables\('([^']+)'\)`)
)

// refs returns the distinct names a template's text references with re.
func refs(text string, re *regexp.Regexp) map[string]bool {
	out := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// Every parameters('x') and variables('x') is declared, and every declared
// parameter and variable is used.
func TestARMTemplatesDeclareWhatTheyUse(t *testing.T) {
	for _, path := range armTemplates {
		t.Run(path, func(t *testing.T) {
			tmpl := readTemplate(t, path)
			data, _ := os.ReadFile(path)
			text := string(data)
			for kind, c := range map[string]struct {
				used     map[string]bool
				declared []string
			}{
				"parameter": {refs(text, paramRef), keys(tmpl.Parameters)},
				"variable":  {refs(text, variableRef), keys(tmpl.Variables)},
			} {
				for name := range c.used {
					if !contains(c.declared, name) {
						t.Errorf("%s %q is used but not declared", kind, name)
					}
				}
				for _, name := range c.declared {
					if !c.used[name] {
						t.Errorf("%s %q is declared but never used", kind, name)
					}
				}
			}
			for name, p := range tmpl.Parameters {
				switch p.Type {
				case "string", "securestring", "int", "bool", "object", "secureObject", "array":
				default:
					t.Errorf("parameter %q: type %q is not an ARM parameter type", name, p.Type)
				}
			}
		})
	}
}

// The extension's identity is not written into the template by hand: the
// scripts pass it from extension.json.
func TestGreenfieldTemplatesDoNotHardCodeTheExtension(t *testing.T) {
	var ext struct{ Publisher, Type string }
	data, err := os.ReadFile("../../extension.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ext); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"greenfield.json", "greenfield.bicep"} {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{ext.Publisher, ext.Type} {
			if strings.Contains(string(text), v) {
				t.Errorf("%s contains %q; take it from the extensionPublisher/extensionType parameters", path, v)
			}
		}
	}
}

var (
	bicepParam    = regexp.MustCompile(`^param\s+(\w+)\s+(\w+)`)
	bicepResource = regexp.MustCompile(`^resource\s+(\w+)\s+'([^'@]+)@([^']+)'`)
	bicepOutput   = regexp.MustCompile(`^output\s+(\w+)\s+(\w+)`)
)

// bicepDecl is what the parity test reads from a Bicep file's top-level lines.
type bicepDecl struct {
	params    map[string]string // name → type
	resources []string          // "type@apiVersion", sorted
	outputs   map[string]string
	secure    map[string]bool
}

func readBicep(t *testing.T, path string) bicepDecl {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := bicepDecl{params: map[string]string{}, outputs: map[string]string{}, secure: map[string]bool{}}
	secureNext := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "@secure()"):
			secureNext = true
		case bicepParam.MatchString(line):
			m := bicepParam.FindStringSubmatch(line)
			d.params[m[1]] = m[2]
			d.secure[m[1]] = secureNext
			secureNext = false
		case bicepResource.MatchString(line):
			m := bicepResource.FindStringSubmatch(line)
			d.resources = append(d.resources, m[2]+"@"+m[3])
		case bicepOutput.MatchString(line):
			m := bicepOutput.FindStringSubmatch(line)
			d.outputs[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(d.resources)
	return d
}

// greenfield.bicep declares the same parameters (names and types), resources
// (types and API versions) and outputs as greenfield.json.
func TestBicepMatchesARMTemplate(t *testing.T) {
	arm := readTemplate(t, "greenfield.json")
	bicep := readBicep(t, "greenfield.bicep")

	armParams := map[string]string{}
	for name, p := range arm.Parameters {
		typ := p.Type
		switch typ {
		case "securestring":
			typ = "string"
			if !bicep.secure[name] {
				t.Errorf("parameter %s is securestring in ARM; want @secure() in Bicep", name)
			}
		case "secureObject":
			typ = "object"
		}
		armParams[name] = typ
	}
	if !reflect.DeepEqual(bicep.params, armParams) {
		t.Errorf("parameters differ\nbicep %v\n  arm %v", bicep.params, armParams)
	}
	var armResources []string
	for _, r := range arm.Resources {
		armResources = append(armResources, r.Type+"@"+r.APIVersion)
	}
	sort.Strings(armResources)
	if !reflect.DeepEqual(bicep.resources, armResources) {
		t.Errorf("resources differ\nbicep %q\n  arm %q", bicep.resources, armResources)
	}
	armOutputs := map[string]string{}
	for name, o := range arm.Outputs {
		armOutputs[name] = o.(map[string]any)["type"].(string)
	}
	if !reflect.DeepEqual(bicep.outputs, armOutputs) {
		t.Errorf("outputs differ\nbicep %v\n  arm %v", bicep.outputs, armOutputs)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
