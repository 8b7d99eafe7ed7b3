// Package manifest generates HandlerManifest.json and the publishing
// definition manifest.xml from extension.json, so that the extension's
// identity and handler settings are written down in exactly one place.
// `make manifest` runs ./manifest/cmd/gen; a test fails while a committed
// file differs from what the generator makes.
//
// Specification: ../shared/spec/handler-contract.md §1, §6.2 and §8.8.
package manifest
