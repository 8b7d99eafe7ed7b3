// Package version is the product version every binary reports; a test
// keeps it equal to extension.json's, the single source of the version.
package version

// Version of msp-agent, msp-handler and mspctl. A variable only so that
// the handler's upgrade tests can build a second agent with
// -ldflags "-X github.com/mspguest/msp/internal/version.Version=…";
// releases never override it.
var Version = "0.1.0"
