// Package manifest generates HandlerManifest.json from extension.json, so
// that the extension's identity and handler settings are written down in
// exactly one place. `make manifest` runs ./manifest/cmd/gen; a test fails
// while the committed manifest/HandlerManifest.json differs from what the
// generator makes.
//
// Specification: ../shared/spec/handler-contract.md §1 and §8.8.
package manifest
