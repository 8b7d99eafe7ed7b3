// Package manifest generates HandlerManifest.json and the publishing
// manifest.xml from extension.json, so that the extension's identity is
// written down in exactly one place.
//
// Specification: ../shared/spec/handler-contract.md §1 and §6.2.
package manifest
