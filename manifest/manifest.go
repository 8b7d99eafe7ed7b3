package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Extension is extension.json: the extension's identity and the handler
// settings the manifest is made from.
type Extension struct {
	Publisher   string  `json:"publisher"`
	Type        string  `json:"type"`
	Version     string  `json:"version"`
	Label       string  `json:"label"`
	Description string  `json:"description"`
	SupportedOS string  `json:"supportedOS"`
	Handler     Handler `json:"handler"`
}

// Handler holds the handler-specific part of extension.json.
type Handler struct {
	// Binary is the handler command relative to the package root; every
	// verb runs "<Binary> <verb>".
	Binary                  string    `json:"binary"`
	ReportHeartbeat         bool      `json:"reportHeartbeat"`
	UpdateMode              string    `json:"updateMode"`
	ContinueOnUpdateFailure bool      `json:"continueOnUpdateFailure"`
	Services                []Service `json:"services"`
}

// Service is a systemd unit waagent applies resource accounting to.
type Service struct {
	Name               string `json:"name"`
	CPUQuotaPercentage int    `json:"cpuQuotaPercentage,omitempty"`
}

// Parse reads extension.json strictly: an unknown field or a missing
// required one is an error naming it.
func Parse(data []byte) (Extension, error) {
	var e Extension
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Extension{}, fmt.Errorf("extension.json: %w", err)
	}
	for _, f := range []struct{ name, v string }{
		{"publisher", e.Publisher}, {"type", e.Type}, {"version", e.Version},
		{"handler.binary", e.Handler.Binary}, {"handler.updateMode", e.Handler.UpdateMode},
	} {
		if strings.TrimSpace(f.v) == "" {
			return Extension{}, fmt.Errorf("extension.json: %s is required", f.name)
		}
	}
	// waagent treats any other spelling as "skip install on upgrade"
	// (handler-contract.md §1): refuse typos here instead.
	if e.Handler.UpdateMode != "UpdateWithInstall" && e.Handler.UpdateMode != "UpdateWithoutInstall" {
		return Extension{}, fmt.Errorf("extension.json: handler.updateMode %q must be UpdateWithInstall or UpdateWithoutInstall", e.Handler.UpdateMode)
	}
	return e, nil
}

// Verbs are the handler commands the manifest names, keyed by manifest
// field.
var Verbs = []struct{ Key, Verb string }{
	{"installCommand", "install"},
	{"uninstallCommand", "uninstall"},
	{"updateCommand", "update"},
	{"enableCommand", "enable"},
	{"disableCommand", "disable"},
	{"resetStateCommand", "resetstate"},
}

type handlerManifest struct {
	InstallCommand             string `json:"installCommand"`
	UninstallCommand           string `json:"uninstallCommand"`
	UpdateCommand              string `json:"updateCommand"`
	EnableCommand              string `json:"enableCommand"`
	DisableCommand             string `json:"disableCommand"`
	ResetStateCommand          string `json:"resetStateCommand"`
	RebootAfterInstall         bool   `json:"rebootAfterInstall"`
	ReportHeartbeat            bool   `json:"reportHeartbeat"`
	UpdateMode                 string `json:"updateMode"`
	ContinueOnUpdateFailure    bool   `json:"continueOnUpdateFailure"`
	SupportsMultipleExtensions bool   `json:"supportsMultipleExtensions"`
}

type resourceLimits struct {
	Services []Service `json:"services"`
}

type signingInfo struct {
	Type      string `json:"type"`
	Publisher string `json:"publisher"`
	Version   string `json:"version"`
}

type entry struct {
	Name            string          `json:"name"`
	Version         json.Number     `json:"version"`
	HandlerManifest handlerManifest `json:"handlerManifest"`
	ResourceLimits  *resourceLimits `json:"resourceLimits,omitempty"`
	SigningInfo     signingInfo     `json:"signingInfo"`
}

// HandlerManifest renders HandlerManifest.json: an array with one object,
// real JSON booleans, single-config, and resourceLimits listing the
// services without a CPU quota unless extension.json sets one.
func HandlerManifest(e Extension) ([]byte, error) {
	cmd := func(verb string) string { return e.Handler.Binary + " " + verb }
	m := entry{
		Name:    e.Type,
		Version: "1.0",
		HandlerManifest: handlerManifest{
			InstallCommand:             cmd("install"),
			UninstallCommand:           cmd("uninstall"),
			UpdateCommand:              cmd("update"),
			EnableCommand:              cmd("enable"),
			DisableCommand:             cmd("disable"),
			ResetStateCommand:          cmd("resetstate"),
			ReportHeartbeat:            e.Handler.ReportHeartbeat,
			UpdateMode:                 e.Handler.UpdateMode,
			ContinueOnUpdateFailure:    e.Handler.ContinueOnUpdateFailure,
			SupportsMultipleExtensions: false,
		},
		SigningInfo: signingInfo{Type: e.Type, Publisher: e.Publisher, Version: e.Version},
	}
	if len(e.Handler.Services) > 0 {
		m.ResourceLimits = &resourceLimits{Services: e.Handler.Services}
	}
	out, err := json.MarshalIndent([]entry{m}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Command returns the command line the manifest holds for verb, for
// tools (the fake waagent) that drive a handler through its manifest.
func Command(manifestJSON []byte, verb string) (string, error) {
	var doc []map[string]json.RawMessage
	if err := json.Unmarshal(manifestJSON, &doc); err != nil {
		return "", fmt.Errorf("HandlerManifest.json: %w", err)
	}
	if len(doc) == 0 {
		return "", fmt.Errorf("HandlerManifest.json: empty array")
	}
	var hm map[string]json.RawMessage
	if err := json.Unmarshal(doc[0]["handlerManifest"], &hm); err != nil {
		return "", fmt.Errorf("HandlerManifest.json: handlerManifest: %w", err)
	}
	for _, v := range Verbs {
		if v.Verb != verb {
			continue
		}
		var s string
		if err := json.Unmarshal(hm[v.Key], &s); err != nil || s == "" {
			return "", fmt.Errorf("HandlerManifest.json: handlerManifest.%s missing", v.Key)
		}
		return s, nil
	}
	return "", fmt.Errorf("HandlerManifest.json: no command for verb %q", verb)
}
