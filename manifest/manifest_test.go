package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestCommittedManifestIsFresh fails when manifest/HandlerManifest.json
// was not regenerated after extension.json changed: run `make manifest`.
func TestCommittedManifestIsFresh(t *testing.T) {
	ext, err := os.ReadFile("../extension.json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(ext)
	if err != nil {
		t.Fatal(err)
	}
	want, err := HandlerManifest(e)
	if err != nil {
		t.Fatal(err)
	}
	wantXML, err := ExtensionImageXML(e)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]byte{"HandlerManifest.json": want, "manifest.xml": wantXML} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("manifest/%s is stale: run `make manifest`\ngot:\n%s\nwant:\n%s", file, got, want)
		}
	}
}

// TestManifestShape checks the contract of handler-contract.md §1/§8.8 on
// the committed file itself, as waagent would read it.
func TestManifestShape(t *testing.T) {
	data, err := os.ReadFile("HandlerManifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc []map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 1 {
		t.Fatalf("got %d elements; want an array with one object", len(doc))
	}
	hm := doc[0]["handlerManifest"].(map[string]any)
	for key, want := range map[string]any{
		"reportHeartbeat":            true,
		"updateMode":                 "UpdateWithInstall",
		"continueOnUpdateFailure":    false,
		"supportsMultipleExtensions": false,
		"rebootAfterInstall":         false,
	} {
		if hm[key] != want {
			t.Errorf("handlerManifest.%s = %#v; want %#v (a real JSON value)", key, hm[key], want)
		}
	}
	for _, v := range Verbs {
		if got := hm[v.Key]; got != "bin/msp-handler "+v.Verb {
			t.Errorf("handlerManifest.%s = %v; want bin/msp-handler %s", v.Key, got, v.Verb)
		}
		if c, err := Command(data, v.Verb); err != nil || c != "bin/msp-handler "+v.Verb {
			t.Errorf("Command(%s) = %q, %v", v.Verb, c, err)
		}
	}
	rl := doc[0]["resourceLimits"].(map[string]any)
	svcs := rl["services"].([]any)
	if len(svcs) != 1 || svcs[0].(map[string]any)["name"] != "msp-agent.service" {
		t.Errorf("resourceLimits.services = %v; want msp-agent.service", svcs)
	}
	if _, quota := svcs[0].(map[string]any)["cpuQuotaPercentage"]; quota {
		t.Error("msp-agent.service must not get a CPU quota (§8.8)")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", `{"publisher":"p","type":"t","version":"1","handler":{"binary":"b","updateMode":"UpdateWithInstall","x":1}}`, "unknown field"},
		{"missing type", `{"publisher":"p","version":"1","handler":{"binary":"b","updateMode":"UpdateWithInstall"}}`, "type is required"},
		{"typo in updateMode", `{"publisher":"p","type":"t","version":"1","handler":{"binary":"b","updateMode":"UpdateWithInstal"}}`, "handler.updateMode"},
		{"not json", `{`, "extension.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExtensionImageXML(t *testing.T) {
	out, err := ExtensionImageXML(Extension{Publisher: "P", Type: "T", Version: "1.2", SupportedOS: "Linux"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<ProviderNameSpace>P</ProviderNameSpace>", "<Version>1.2.0.0</Version>", "<IsJsonExtension>true</IsJsonExtension>", `xmlns="http://schemas.microsoft.com/windowsazure"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("manifest.xml lacks %s:\n%s", want, out)
		}
	}
}
