package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

// identity is the part of extension.json a package is named after.
type identity struct {
	Publisher string `json:"publisher"`
	Type      string `json:"type"`
	Version   string `json:"version"`
	// Description is one line, reused by the .deb.
	Description string `json:"description"`
}

var (
	namePart   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.]*$`)
	versionFmt = regexp.MustCompile(`^[0-9]+(\.[0-9]+){2,3}$`)
)

// readIdentity reads and checks publisher, type and version from extension.json.
func readIdentity(path string) (identity, error) {
	var id identity
	data, err := os.ReadFile(path)
	if err != nil {
		return id, fmt.Errorf("read extension identity: %w", err)
	}
	if err := json.Unmarshal(data, &id); err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case !namePart.MatchString(id.Publisher):
		return id, fmt.Errorf("%s: publisher %q: want letters, digits and dots, e.g. \"Contoso.Security\"", path, id.Publisher)
	case !namePart.MatchString(id.Type):
		return id, fmt.Errorf("%s: type %q: want letters, digits and dots, e.g. \"MspAgentLinux\"", path, id.Type)
	case !versionFmt.MatchString(id.Version):
		return id, fmt.Errorf("%s: version %q: want 3 or 4 dot-separated numbers, e.g. \"1.0.0\"", path, id.Version)
	}
	return id, nil
}

// zipName is the package file name, <publisher>.<type>-<version>.zip.
func (id identity) zipName() string {
	return fmt.Sprintf("%s.%s-%s.zip", id.Publisher, id.Type, id.Version)
}
