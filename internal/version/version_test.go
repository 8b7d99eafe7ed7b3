package version

import (
	"encoding/json"
	"os"
	"testing"
)

func TestVersionIsExtensionJSONs(t *testing.T) {
	data, err := os.ReadFile("../../extension.json")
	if err != nil {
		t.Fatal(err)
	}
	var ext struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &ext); err != nil {
		t.Fatal(err)
	}
	if ext.Version != Version {
		t.Errorf("extension.json has version %q, internal/version %q: change both together", ext.Version, Version)
	}
}
