package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/authz/rulefile"
)

// The example settings the README and the goldens use are what the handler
// accepts: the four known keys, and authorization items the strict loader
// takes; and the audit stage's rewrite keeps them so, in audit mode.
func TestSettingsExampleIsValid(t *testing.T) {
	data, err := os.ReadFile("settings.example.json")
	if err != nil {
		t.Fatal(err)
	}
	auditLine, stderr, _, err := runScript(t, 0, nil, "brownfield-vm.sh", "--dry-run", "-g", "rg", "-n", "vm", "--settings", "settings.example.json", "audit")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	_, after, ok := strings.Cut(auditLine, "--settings '")
	if !ok {
		t.Fatalf("no --settings in:\n%s", auditLine)
	}
	audited, _, _ := strings.Cut(after, "'")
	for name, doc := range map[string][]byte{"as written": data, "audit stage": []byte(audited)} {
		var settings map[string]json.RawMessage
		if err := json.Unmarshal(doc, &settings); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for key, raw := range settings {
			switch key {
			case "imds", "wireServer":
				item, err := rulefile.ParseItem(raw)
				if err != nil {
					t.Errorf("%s: %s: %v", name, key, err)
					continue
				}
				if name == "audit stage" && item.Mode != "audit" {
					t.Errorf("audit stage: %s mode %q; want audit", key, item.Mode)
				}
			case "logLevel", "netnsPolicy":
			default:
				t.Errorf("%s: unknown settings key %q", name, key)
			}
		}
	}
}
