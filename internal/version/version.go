// Package version is the product version every binary reports; a test
// keeps it equal to extension.json's, the single source of the version.
package version

// Version of msp-agent, msp-handler and mspctl.
const Version = "0.1.0"
